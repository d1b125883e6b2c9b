"""Tracking is one seam: one object receives round results; MLflow is its implementation.

A tracking outage must not stop training, nor lose what was tracked: it waits on disk
until MLflow answers (`write_journal`, `tracking_buffer`; `python -m fl_server.tracking.flush`).
Only the server tracks; nodes never talk to MLflow.
"""

from pathlib import Path

from fl_protocol.settings import RunSettings
from fl_server.tracking.local_history import read_history, write_history
from fl_server.tracking.mlflow_tracker import MlflowTracker, resolve_tracking_uri
from fl_server.tracking.plots import plot_history
from fl_server.tracking.tracker import NullTracker, ResumedRun, RunOutcome, RunTracker, TrackedRun

__all__ = [
    "MlflowTracker",
    "NullTracker",
    "ResumedRun",
    "RunOutcome",
    "RunTracker",
    "TrackedRun",
    "build_tracker",
    "plot_history",
    "read_history",
    "resolve_tracking_uri",
    "write_history",
]


def build_tracker(settings: RunSettings, output_dir: Path) -> RunTracker:
    """The tracker `settings.tracking` asks for: MLflow, or nothing when disabled."""
    if not settings.tracking.enabled:
        return NullTracker(output_dir)
    return MlflowTracker(settings.tracking, output_dir)
