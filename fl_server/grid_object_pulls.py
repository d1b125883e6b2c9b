"""The ServerApp asks again soon for the parts of a reply still on their way.

A node pushes its reply message first and then its parts (arrays, records) one by one; the
ServerApp may see the message before its parts. Flower 1.42's HTTP Grid
(`flwr/superlink/grid/http_grid.py`) then waits 1 s before asking again, doubling, at every
exchange, and a secure-aggregation round has five exchanges in a row. This sets that first
wait from `federation.reply_object_retry_s`. The Grid looks `pull_objects` up in its module
at each call; the simulation's in-memory Grid has no such wait and is left as it is.
"""

import functools

from flwr.supercore.inflatable.inflatable_utils import pull_objects
from flwr.superlink.grid import http_grid

# Ceiling of the growing pause between asks.
_RETRY_CAP_S = 1.0


def fit_reply_object_retry(retry_s: float) -> None:
    """Make the HTTP Grid ask again for a missing part after `retry_s` seconds, growing to 1 s."""
    http_grid.pull_objects = functools.partial(  # type: ignore[attr-defined]
        pull_objects, initial_backoff=retry_s, backoff_cap=_RETRY_CAP_S)
