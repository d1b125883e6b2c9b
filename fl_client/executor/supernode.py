"""Flower's SuperNode, with its waits fitted to a federation's rounds.

    python -P supernode.py --idle-poll-s 0.5 --busy-poll-s 0.1 --busy-period-s 20 --object-retry-s 0.02 \
        -- [flower-supernode options]

Flower 1.42's SuperNode loop (`flwr/supernode/start_client_internal.py`) sleeps 3 s after
every pull that found no message for it, checks for the ClientApp's reply every 0.5 s, and
pulls a message's objects from the SuperLink with a first retry after 1 s for an object the
coordinator has not finished pushing. A round is several exchanges one after the other
(secure aggregation: two a round, five in the first), each waiting for the slowest node:
those waits, not the work, made most of a deployed round. This runs Flower's own
`flower-supernode` entry point, unchanged but for those three waits, which come from the
node's settings (`configs/deployment/node.yaml`). The wait between asks for work is short
for a while after the node handled a message (a run's next instruction follows within
seconds) and long while the node has had nothing to do, so an idle federation costs the
coordinator few requests. With `--wake-fifo`, each stored message wakes the node's executor
through that pipe instead of the executor polling for it. Imports Flower only (see the
package docstring).
"""

import argparse
import functools
import math
import os
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flwr.supercore.inflatable.inflatable_utils import pull_objects
from flwr.supernode import start_client_internal
from flwr.supernode.cli import flower_supernode

# The literal waits of Flower 1.42's SuperNode loop (a test checks they are still there).
FLOWER_IDLE_WAIT_S = 3
FLOWER_REPLY_WAIT_S = 0.5
# Ceiling of the growing pause between asks for an object the SuperLink does not have yet.
_OBJECT_RETRY_CAP_S = 1.0
# Checking the node's own store for the ClientApp's reply costs nothing: no reason to wait long.
_REPLY_POLL_S = 0.01


@dataclass
class WorkPolls:
    """How long the node waits before asking the coordinator for work again."""

    idle_poll_s: float
    busy_poll_s: float
    busy_period_s: float
    last_message: float = -math.inf  # time.monotonic() when the node last sent a reply

    def message_handled(self) -> None:
        self.last_message = time.monotonic()

    def wait_s(self) -> float:
        """`busy_poll_s` within `busy_period_s` of the last message, else `idle_poll_s`."""
        busy = time.monotonic() - self.last_message < self.busy_period_s
        return self.busy_poll_s if busy else self.idle_poll_s


def fitted_time(polls: WorkPolls) -> types.ModuleType:
    """The `time` module, but for the loop's two fixed sleeps."""
    fitted = types.ModuleType("time")
    fitted.__dict__.update(time.__dict__)

    def sleep(seconds: float) -> None:
        if seconds == FLOWER_IDLE_WAIT_S:
            seconds = polls.wait_s()
        elif seconds == FLOWER_REPLY_WAIT_S:
            seconds = _REPLY_POLL_S
        time.sleep(seconds)

    fitted.sleep = sleep  # type: ignore[attr-defined]
    return fitted


def poke(wake_fifo: Path) -> None:
    """One byte into the executor's wake pipe; nobody listening, or the pipe full, is fine."""
    try:
        descriptor = os.open(wake_fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return
    try:
        os.write(descriptor, b"\0")
    except OSError:
        pass
    finally:
        os.close(descriptor)


def wake_executor_on_message(wake_fifo: Path) -> None:
    """Poke the executor as soon as the loop stored a message: it then takes the task at once."""
    pull_and_store = start_client_internal._pull_and_store_message

    def pull_store_and_poke(*args: Any, **kwargs: Any) -> int | None:
        run_id = pull_and_store(*args, **kwargs)
        if run_id is not None:
            poke(wake_fifo)
        return run_id

    start_client_internal._pull_and_store_message = pull_store_and_poke  # type: ignore[attr-defined]


def fit_waits(polls: WorkPolls, object_retry_s: float) -> None:
    """Set the SuperNode loop's waits (module attributes it looks up at each call)."""
    start_client_internal.time = fitted_time(polls)  # type: ignore[attr-defined]
    push_messages = start_client_internal._push_messages

    def push_then_note(*args: Any, **kwargs: Any) -> None:
        try:
            push_messages(*args, **kwargs)
        finally:
            polls.message_handled()

    start_client_internal._push_messages = push_then_note  # type: ignore[attr-defined]
    start_client_internal.pull_objects = functools.partial(  # type: ignore[attr-defined]
        pull_objects, initial_backoff=object_retry_s, backoff_cap=_OBJECT_RETRY_CAP_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-poll-s", type=float, required=True)
    parser.add_argument("--busy-poll-s", type=float, required=True)
    parser.add_argument("--busy-period-s", type=float, required=True)
    parser.add_argument("--object-retry-s", type=float, required=True)
    parser.add_argument("--wake-fifo", type=Path, help="the executor's wake pipe (runner.py --wake-fifo)")
    parser.add_argument("flower_arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    fit_waits(WorkPolls(args.idle_poll_s, args.busy_poll_s, args.busy_period_s), args.object_retry_s)
    if args.wake_fifo is not None:
        wake_executor_on_message(args.wake_fifo)
    flower_arguments = args.flower_arguments[1:] if args.flower_arguments[:1] == ["--"] else args.flower_arguments
    sys.argv = ["flower-supernode", *flower_arguments]
    flower_supernode()


if __name__ == "__main__":
    main()
