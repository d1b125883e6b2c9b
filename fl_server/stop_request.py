"""A request to stop the run at the next safe point, from outside the round loop.

A signal handler (Ctrl-C in `fedtriage simulate`) sets it; the round loop and every
node exchange check it while they wait, so a run stops within moments, closes its
record as killed and keeps its checkpoints, instead of failing rounds until its end.
It is process-wide because signals are.
"""

import threading

_REQUESTED = threading.Event()


def request_stop() -> None:
    """Ask the running federation to stop at its next safe point."""
    _REQUESTED.set()


def stop_requested() -> bool:
    return _REQUESTED.is_set()


def clear_stop_request() -> None:
    """A new run starts without the previous run's request."""
    _REQUESTED.clear()
