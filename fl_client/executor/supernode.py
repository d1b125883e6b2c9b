"""Flower's SuperNode, with its waits fitted to a federation's rounds.

    python -P supernode.py --idle-poll-s 0.5 --object-retry-s 0.02 -- [flower-supernode options]

Flower 1.42's SuperNode loop (`flwr/supernode/start_client_internal.py`) sleeps 3 s after
every pull that found no message for it, checks for the ClientApp's reply every 0.5 s, and
pulls a message's objects from the SuperLink with a first retry after 1 s for an object the
coordinator has not finished pushing. A secure-aggregation round is five exchanges one after
the other, each waiting for the slowest node: those waits, not the work, made most of a
deployed round. This runs Flower's own `flower-supernode` entry point, unchanged but for
those three waits, which come from the node's settings (`configs/deployment/node.yaml`).
Imports Flower only (see the package docstring).
"""

import argparse
import functools
import sys
import time
import types

from flwr.supercore.inflatable.inflatable_utils import pull_objects
from flwr.supernode import start_client_internal
from flwr.supernode.cli import flower_supernode

# The literal waits of Flower 1.42's SuperNode loop (a test checks they are still there).
FLOWER_IDLE_WAIT_S = 3
FLOWER_REPLY_WAIT_S = 0.5
# Ceiling of the growing pause between asks for an object the SuperLink does not have yet.
_OBJECT_RETRY_CAP_S = 1.0
# Checking the node's own store for the ClientApp's reply costs nothing: no reason to wait long.
_REPLY_POLL_S = 0.05


def fitted_time(idle_poll_s: float) -> types.ModuleType:
    """The `time` module, but for the loop's two fixed sleeps."""
    fitted = types.ModuleType("time")
    fitted.__dict__.update(time.__dict__)
    waits = {FLOWER_IDLE_WAIT_S: idle_poll_s, FLOWER_REPLY_WAIT_S: _REPLY_POLL_S}
    fitted.sleep = lambda seconds: time.sleep(waits.get(seconds, seconds))  # type: ignore[attr-defined]
    return fitted


def fit_waits(idle_poll_s: float, object_retry_s: float) -> None:
    """Set the SuperNode loop's waits (module attributes it looks up at each call)."""
    start_client_internal.time = fitted_time(idle_poll_s)  # type: ignore[attr-defined]
    start_client_internal.pull_objects = functools.partial(  # type: ignore[attr-defined]
        pull_objects, initial_backoff=object_retry_s, backoff_cap=_OBJECT_RETRY_CAP_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-poll-s", type=float, required=True)
    parser.add_argument("--object-retry-s", type=float, required=True)
    parser.add_argument("flower_arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    fit_waits(args.idle_poll_s, args.object_retry_s)
    flower_arguments = args.flower_arguments[1:] if args.flower_arguments[:1] == ["--"] else args.flower_arguments
    sys.argv = ["flower-supernode", *flower_arguments]
    flower_supernode()


if __name__ == "__main__":
    main()
