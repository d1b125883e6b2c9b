"""The one mapping from the error family to what a user sees: one line and an exit code.

`fedtriage: <headline>: <message>` on stderr, the exit code of the error's class
(bad input 2, federation failure 1, interrupted 130); nothing else, no traceback.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from fedtriage.errors import BadInput, FederationFailed, FedtriageError, Interrupted

_HEADLINES: tuple[tuple[type[FedtriageError], str], ...] = (
    (BadInput, "error"),
    (FederationFailed, "federation failed"),
    (Interrupted, "interrupted"),
)


def headline(err: FedtriageError) -> str:
    """The words before the message: what kind of ending this is."""
    return next((words for kind, words in _HEADLINES if isinstance(err, kind)), "failed")


def report(err: FedtriageError) -> int:
    """Print `err` as one line on stderr; return its exit code."""
    print(f"fedtriage: {headline(err)}: {err}", file=sys.stderr, flush=True)
    return err.exit_code


def report_interrupt(what_is_kept: str = "stopped before the end") -> int:
    """Ctrl-C: one line past the ^C the terminal echoed, saying what is kept; return 130."""
    print(file=sys.stderr, flush=True)
    return report(Interrupted(what_is_kept))


@contextmanager
def exit_on_error() -> Iterator[None]:
    """For code that runs under another framework's entry point (Hydra's): the same exits, by `sys.exit`."""
    try:
        yield
    except FedtriageError as err:
        sys.exit(report(err))
    except KeyboardInterrupt:
        sys.exit(report_interrupt())
