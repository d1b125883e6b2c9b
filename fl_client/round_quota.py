"""The training rounds a node took, per run and per local day, kept on its own disk.

The node's policy may cap them (`schedule.max_rounds_per_run`, `schedule.max_rounds_per_day`).
A run's `Context` lasts only as long as the run and a day spans runs, so the counts live in
`<state>/rounds.json`, changed under a lock and replaced atomically (mode 0600). A round is
counted when the node admits its training, before any work: a node killed mid-round has
still spent it. A file that cannot be read is an error naming it, never a reset to zero.
"""

import datetime
import json
import os
import tempfile
from pathlib import Path

from fl_client.file_lock import locked_beside
from fl_client.policy_gate import PolicyRefused
from fl_protocol.settings.policy import SchedulePolicy

ROUNDS_FILE = "rounds.json"
_FORMAT = "fedtriage-rounds-1"
# Days and runs kept in the file: enough for any limit, small enough to rewrite every round.
_KEEP_DAYS = 31
_KEEP_RUNS = 200


class RoundsUnreadable(PolicyRefused):
    """The node's round counts cannot be trusted: it takes no rounds while a limit is set."""

    def __init__(self, detail: str) -> None:
        super().__init__("rounds-unreadable", detail)


class RoundQuota:
    """The rounds counted in `state_dir/rounds.json`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / ROUNDS_FILE

    def admit(self, run_id: int, schedule: SchedulePolicy, today: datetime.date | None = None) -> None:
        """Count one training round of `run_id`, or raise `PolicyRefused` (and count nothing) past a limit."""
        day = (today or datetime.date.today()).isoformat()
        run = str(run_id)
        with locked_beside(self.path):
            counts = self._read()
            days, runs = counts["days"], counts["runs"]
            per_run, per_day = schedule.max_rounds_per_run, schedule.max_rounds_per_day
            if per_run is not None and runs.get(run, 0) >= per_run:
                raise PolicyRefused(
                    "rounds-per-run",
                    f"run {run_id} had {runs[run]} rounds here; schedule.max_rounds_per_run is {per_run}",
                )
            if per_day is not None and days.get(day, 0) >= per_day:
                raise PolicyRefused(
                    "rounds-per-day", f"{days[day]} rounds here on {day}; schedule.max_rounds_per_day is {per_day}"
                )
            days[day] = days.get(day, 0) + 1
            runs[run] = runs.pop(run, 0) + 1  # re-inserted last: the most recent runs are the ones kept
            self._write(days, runs)

    def counts(self) -> dict[str, dict[str, int]]:
        """{"days": {date: rounds}, "runs": {run id: rounds}} as on disk."""
        with locked_beside(self.path):
            return self._read()

    def _read(self) -> dict[str, dict[str, int]]:
        if not self.path.exists():
            return {"days": {}, "runs": {}}
        try:
            document = json.loads(self.path.read_text())
            if not isinstance(document, dict) or document.get("format") != _FORMAT:
                raise ValueError(f"not a {_FORMAT} file")
            days, runs = document["days"], document["runs"]
            if not all(
                isinstance(part, dict) and all(isinstance(v, int) for v in part.values()) for part in (days, runs)
            ):
                raise ValueError("counts must be whole numbers")
        except (OSError, ValueError, KeyError) as err:
            raise RoundsUnreadable(
                f"the node's round counts {self.path} cannot be read ({err}); fix or remove "
                "the file once you know how many rounds the node took"
            ) from err
        return {"days": days, "runs": runs}

    def _write(self, days: dict[str, int], runs: dict[str, int]) -> None:
        kept_days = dict(sorted(days.items())[-_KEEP_DAYS:])
        kept_runs = dict(list(runs.items())[-_KEEP_RUNS:])
        document = {"format": _FORMAT, "days": kept_days, "runs": kept_runs}
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".rounds-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w") as file:
                json.dump(document, file)
                file.flush()
                os.fsync(file.fileno())  # a crash leaves the old counts or the new, never fewer
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
