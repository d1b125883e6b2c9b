"""The seam between the server and experiment tracking: what the server reports, when."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from fl_protocol.settings import RunSettings
from fl_server.round_record import RoundRecord
from fl_server.tracking.local_history import write_local_history

# Final states a run can be closed with (MLflow's names for them); KILLED: stopped by its user.
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended, as the tracker records it: its status, rounds, final model and checkpoint."""

    status: str
    history: list[RoundRecord]
    model: torch.nn.Module | None = None
    checkpoint_path: Path | None = None
    # Stored with the logged model (e.g. its spec, for triage).
    model_metadata: dict[str, Any] = field(default_factory=dict)
    # The model's signature: one input's shape (channels, height, width) and its number of outputs.
    model_input_shape: tuple[int, ...] | None = None
    model_outputs: int | None = None

    def __post_init__(self) -> None:
        # A wrong final status is the caller's bug, so it raises instead of being tolerated.
        if self.status not in RUN_STATUSES:
            raise ValueError(f"run status must be one of {', '.join(RUN_STATUSES)}, got {self.status!r}")


@dataclass(frozen=True)
class ResumedRun:
    """The run a resumed run continues: its tracked run (if any) and the round it stopped after."""

    run_id: str | None
    after_round: int


@dataclass
class TrackedRun:
    """Where a finished run's record can be found, for the server's closing summary."""

    run_id: str | None
    tracking_uri: str
    experiment_name: str
    model_uri: str | None
    registered_model_version: str | None
    # What to run (or open) to see this run in the MLflow UI; empty when nothing was tracked.
    ui_command: str
    # What tracking could not record, in words (an outage); None when all of it was recorded.
    gaps: str | None = None


class RunTracker(Protocol):
    """Receives the results of one federation run; never raises for a tracking outage."""

    @property
    def run_id(self) -> str | None:
        """The tracked run's id once started (None when nothing is tracked)."""

    def start(self, settings: RunSettings, resumes: "ResumedRun | None" = None) -> None:
        """Open the run and record the resolved configuration it runs with (and which run it resumes)."""

    def log_holdings(self, reports: dict[str, dict[str, int | str]]) -> None:
        """Record what each node's holdings loader kept and skipped (node label -> report)."""

    def log_round(self, record: RoundRecord) -> None:
        """Record a completed round (round 0: the initial central evaluation)."""

    def log_failed_round(self, record: RoundRecord, reason: str) -> None:
        """Record a round that produced no new global model, and why."""

    def log_federated_evaluation(self, server_round: int, metrics: dict[str, float]) -> None:
        """Record the nodes' evaluation of a round's model that arrived after the round."""

    def finish(self, outcome: RunOutcome) -> TrackedRun:
        """Record the outcome (history, plots, final model, checkpoint) and close the run."""
        ...


class NullTracker:
    """Tracking switched off (`tracking.enabled=false`): nothing goes to MLflow.

    Given an output folder, it still writes `history.json` there at `finish`: that local
    record does not depend on MLflow (benchmarks read it with tracking off).
    """

    def __init__(self, output_dir: Path | None = None) -> None:
        self._output_dir = output_dir
        self._experiment_name = ""

    run_id = None

    def start(self, settings: RunSettings, resumes: ResumedRun | None = None) -> None:
        self._experiment_name = settings.tracking.experiment_name

    def log_holdings(self, reports: dict[str, dict[str, int | str]]) -> None:
        pass

    def log_round(self, record: RoundRecord) -> None:
        pass

    def log_failed_round(self, record: RoundRecord, reason: str) -> None:
        pass

    def log_federated_evaluation(self, server_round: int, metrics: dict[str, float]) -> None:
        pass

    def finish(self, outcome: RunOutcome) -> TrackedRun:
        if self._output_dir is not None:
            write_local_history(outcome.history, self._output_dir)
        return TrackedRun(
            run_id=None,
            tracking_uri="",
            experiment_name=self._experiment_name,
            model_uri=None,
            registered_model_version=None,
            ui_command="",
        )
