"""The run summary the server leaves in its output directory (`summary.json`).

Entry points and benchmarks read it back; it is also the local record of a run
when MLflow was unreachable.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

SUMMARY_FILE = "summary.json"


@dataclass
class RunSummary:
    """How a run ended and where its results are."""

    status: str
    output_dir: str
    rounds_completed: int
    final_metrics: dict[str, float] = field(default_factory=dict)
    final_model_path: str | None = None
    latest_checkpoint: str | None = None
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    mlflow_ui_command: str | None = None
    registered_model_version: str | None = None
    error: str | None = None
    # Set when the run ended before federation.num_rounds on purpose (privacy budget).
    stopped_early: str | None = None
    # An interrupted run: the command that continues it from its latest checkpoint.
    resume_command: str | None = None
    # What MLflow lacks of this run (an outage), if anything: `history.json` is then the record.
    tracking_gaps: str | None = None


def write_summary(summary: RunSummary) -> Path:
    """Write `summary.json` into the summary's output directory."""
    path = Path(summary.output_dir) / SUMMARY_FILE
    path.write_text(json.dumps(asdict(summary), indent=2, sort_keys=True))
    return path


def read_summary(output_dir: Path) -> RunSummary:
    """Read the `summary.json` a run left in `output_dir`."""
    return RunSummary(**json.loads((output_dir / SUMMARY_FILE).read_text()))
