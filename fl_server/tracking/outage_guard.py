"""Turns tracking failures into warnings: an MLflow outage must never stop training.

Each kind of failure is warned about once; repeats go to DEBUG, so a dead server
costs the operator one line per kind, not one per round.
"""

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("fedtriage.tracking")


class OutageGuard:
    """Runs tracking calls, swallowing and counting their failures."""

    def __init__(self, tracking_uri: str) -> None:
        self._tracking_uri = tracking_uri
        self._failures: Counter[str] = Counter()

    @contextmanager
    def attempt(self, action: str) -> Iterator[None]:
        """Run the block; on any error, warn (once per `action`) and carry on after it."""
        try:
            yield
        except Exception as err:  # MLflow, HTTP, database and file errors alike
            self._failures[action] += 1
            level = logging.WARNING if self._failures[action] == 1 else logging.DEBUG
            logger.log(
                level,
                "MLflow tracking at %s could not %s (%s: %s); training goes on, the MLflow "
                "record will be incomplete. Further failures to %s are logged at DEBUG level.",
                self._tracking_uri,
                action,
                type(err).__name__,
                err,
                action,
            )

    @property
    def failures(self) -> dict[str, int]:
        """Number of failed attempts per action."""
        return dict(self._failures)
