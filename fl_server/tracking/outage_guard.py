"""What the operator hears of tracking trouble: few lines, each saying what happens to the records.

An MLflow outage costs one warning when MLflow stops answering (naming the folder where its
records wait) and one line when it answers again, however many rounds it lasts. A record
MLflow answers but refuses (a bad value, a deleted experiment) is a different matter: it is
not buffered (it would be refused again), so it is warned about once per kind and counted,
and the run's closing lines say the MLflow run is incomplete.
"""

import logging
from collections import Counter
from pathlib import Path

logger = logging.getLogger("fedtriage.tracking")


class OutageGuard:
    """Warns about outages once each and counts the records MLflow refused."""

    def __init__(self, tracking_uri: str) -> None:
        self._tracking_uri = tracking_uri
        self._down = False
        self._refused: Counter[str] = Counter()

    def went_down(self, err: BaseException, buffer_folder: Path) -> None:
        """MLflow did not answer: warn, unless this outage was warned about already."""
        if self._down:
            return
        self._down = True
        logger.warning(
            "MLflow tracking at %s does not answer (%s: %s); training goes on, and what it would record "
            "is kept in %s and sent once MLflow answers again.",
            self._tracking_uri, type(err).__name__, _first_line(err), buffer_folder,
        )

    def came_back(self, sent: int, run_id: str | None) -> None:
        """The buffered records were sent: say so."""
        self._down = False
        logger.info("MLflow tracking at %s answers again: %d buffered records sent to run %s",
                    self._tracking_uri, sent, run_id)

    def refused(self, kind: str, err: BaseException, what: str = "was refused") -> None:
        """A record of `kind` MLflow answered but refused (or that could not even be buffered: `what`
        says which) is lost to the MLflow run: warn once per kind, count every one."""
        self._refused[kind] += 1
        level = logging.WARNING if self._refused[kind] == 1 else logging.DEBUG
        logger.log(level, "a %r record for MLflow tracking at %s %s (%s: %s); the MLflow run will lack it. "
                   "Further such %r records are logged at DEBUG level.",
                   kind, self._tracking_uri, what, type(err).__name__, _first_line(err), kind)

    @property
    def refusals(self) -> dict[str, int]:
        """Number of records lost to the MLflow run, per kind."""
        return dict(self._refused)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
