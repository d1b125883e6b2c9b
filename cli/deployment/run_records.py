"""What `fedtriage run start` remembers of each run it submitted: `state/runs/<run id>.json`.

Flower knows a run by its id, app and status; the coordinator also needs the run's
settings and output folder (its checkpoints and summary) to resume it, and the run it
continues, if any.
"""

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from fedtriage.errors import ConfigError


@dataclass
class RunRecord:
    run_id: int
    app: str
    overrides: list[str]
    output_dir: str
    submitted_at: str
    # The run this one resumes (`fedtriage run resume`), if any.
    resumes: int | None = None


def record_path(runs_dir: Path, run_id: int) -> Path:
    return runs_dir / f"{run_id}.json"


def write_record(runs_dir: Path, record: RunRecord) -> Path:
    runs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = record_path(runs_dir, record.run_id)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")
    os.replace(partial, path)
    return path


def read_record(runs_dir: Path, run_id: int) -> RunRecord:
    path = record_path(runs_dir, run_id)
    try:
        return RunRecord(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as err:
        raise ConfigError("RUN_ID", f"run {run_id} was not started by `fedtriage run start` from this coordinator "
                          f"(no {path}); `fedtriage run list` shows the runs") from err
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError("RUN_ID", f"cannot read {path}: {err}") from err


def all_records(runs_dir: Path) -> dict[int, RunRecord]:
    records = {}
    for path in sorted(runs_dir.glob("*.json")) if runs_dir.is_dir() else []:
        if path.stem.isdigit():
            try:
                records[int(path.stem)] = read_record(runs_dir, int(path.stem))
            except ConfigError:
                continue
    return records
