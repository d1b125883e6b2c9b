"""Runs written straight into an MLflow store through the tracker's own records, for tests of what reads them.

The records go through `MlflowTarget`, the code that writes every tracked run: the
experiment, a sweep's parent and child tags, steps and times are as a real run leaves
them; only the figures are chosen by the test, so a report can be checked against them.
"""

from dataclasses import dataclass, field

from fl_server.tracking.mlflow_writes import MlflowTarget
from fl_server.tracking.tracking_buffer import BufferState

START_MS = 1_800_000_000_000


@dataclass(frozen=True)
class PlannedRun:
    """What to log: metric name -> (step, value) per round, params, tags, times; `status=None` leaves it running."""

    name: str
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    sweep_id: str | None = None
    start_ms: int = START_MS
    end_ms: int | None = START_MS + 60_000
    status: str | None = "FINISHED"


def log_run(tracking_uri: str, experiment: str, planned: PlannedRun) -> str:
    """Log `planned` in `experiment` of the store `tracking_uri`; return the run's id."""
    target = MlflowTarget(BufferState(tracking_uri))
    target.send({"kind": "open_run", "experiment": experiment, "run_name": planned.name, "tags": planned.tags,
                 "sweep_id": planned.sweep_id, "start_time": planned.start_ms})
    if planned.params:
        target.send({"kind": "params", "params": planned.params})
    for name, series in planned.metrics.items():
        points = [[name, value, planned.start_ms + step, step] for step, value in series]
        target.send({"kind": "metrics", "metrics": points})
    if planned.status is not None:
        target.send({"kind": "close", "status": planned.status, "end_time": planned.end_ms})
    assert target.state.run_id is not None
    return target.state.run_id
