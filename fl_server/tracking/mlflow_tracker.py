"""MLflow as the implementation of the tracking seam (`tracker.RunTracker`).

Every write is a record (`mlflow_writes`) that names its store and run explicitly; the only
use of MLflow's process-wide state is model logging (see `model_logging`). Records go
through a `WriteJournal`: MLflow being down costs the run neither its training nor its
MLflow record, which waits on disk (`tracking_buffer`) until MLflow answers again.
`<output_dir>/history.json` is written whatever MLflow does.
"""

import json
import logging
import os
import shlex
import warnings
from pathlib import Path
from tempfile import TemporaryDirectory

from mlflow.environment_variables import MLFLOW_TRACKING_URI
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE
from mlflow.utils.validation import MAX_TAG_VAL_LENGTH
from omegaconf import OmegaConf

from fedtriage.environment import disable_phone_home
from fedtriage.fingerprint import code_fingerprint
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.settings import RunSettings, TrackingSettings
from fl_server.round_record import RoundRecord
from fl_server.tracking.local_history import HISTORY_FILE, history_to_json, write_local_history
from fl_server.tracking.mlflow_writes import MlflowTarget, Record, metrics_record, now_ms, shorten_http_patience
from fl_server.tracking.model_registry import CANDIDATE_ALIAS
from fl_server.tracking.outage_guard import OutageGuard
from fl_server.tracking.plots import plot_history
from fl_server.tracking.round_metrics import ROUND_FAILED, federated_metrics, holdings_metrics, round_metrics
from fl_server.tracking.run_params import config_params
from fl_server.tracking.tracker import ResumedRun, RunOutcome, TrackedRun
from fl_server.tracking.tracking_buffer import BufferState, free_buffer_folder
from fl_server.tracking.write_journal import WriteJournal

logger = logging.getLogger("fedtriage.tracking")

# MLflow's own chatter (its database migrations at INFO) and SQLAlchemy's deprecation notice
# about MLflow's store are nothing a user can act on; what matters reaches them from fedtriage.
logging.getLogger("mlflow").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=r"The ``noload`` loader strategy is deprecated", category=DeprecationWarning)

# MLflow's own default store is `sqlite:///mlflow.db` in the working directory.
_DEFAULT_DATABASE = "mlflow.db"
_CONFIG_ARTIFACT = "config/resolved_config.yaml"
_HOLDINGS_ARTIFACT = "holdings/reports.json"
_PLOT_ARTIFACT_DIR = "plots"
_PLOT_FILE = "metrics.png"
_CHECKPOINT_ARTIFACT_DIR = "checkpoints"
# Sends a buffer left by a run that ended while MLflow did not answer.
FLUSH_MODULE = "fl_server.tracking.flush"

UPDATE_PROTECTION_TAG = "fedtriage.update_protection"
# Set to "true" when updates travel in plaintext, so such runs can be found with one search.
PLAINTEXT_UPDATES_TAG = "fedtriage.plaintext_updates"
# `fedtriage <version> sha256:<sources>`: the code that trained the run's model.
CODE_FINGERPRINT_TAG = "fedtriage.code_fingerprint"
# `fedtriage.failed_round.<round>` holds the reason a round failed.
FAILED_ROUND_TAG = "fedtriage.failed_round"
# A resumed run: the run it continues, and the round that run stopped after.
RESUMES_RUN_TAG = "fedtriage.resumes_run"
RESUMED_AFTER_ROUND_TAG = "fedtriage.resumed_after_round"


def resolve_tracking_uri(tracking_uri: str | None) -> str:
    """`tracking_uri` (`tracking.tracking_uri`), else `$MLFLOW_TRACKING_URI`, else `sqlite:///<cwd>/mlflow.db`.

    The same precedence MLflow itself applies; the default is made absolute so the
    printed UI command works from any directory.
    """
    if tracking_uri:
        return tracking_uri
    if from_env := os.environ.get(MLFLOW_TRACKING_URI.name):
        return from_env
    return f"sqlite:///{(Path.cwd() / _DEFAULT_DATABASE).resolve().as_posix()}"


def default_run_name(settings: RunSettings) -> str:
    """A name that tells runs of a comparison apart, e.g. `fedprox-cnn-4nodes-dirichlet`."""
    return (
        f"{settings.strategy.name}-{settings.model.name}-"
        f"{settings.federation.num_nodes}nodes-{settings.partition.scheme}"
    )


class MlflowTracker:
    """Records one federation run as an MLflow run (a child run when part of a sweep).

    Every write goes through a `WriteJournal`: while MLflow does not answer, writes wait in
    `<output_dir>/tracking-buffer/` and go out in order once it answers again, the run
    itself created then if it could not be at the start.
    """

    def __init__(self, settings: TrackingSettings, output_dir: Path) -> None:
        disable_phone_home()
        self._settings = settings
        self._output_dir = output_dir
        self._tracking_uri = resolve_tracking_uri(settings.tracking_uri)
        self._journal = WriteJournal(
            MlflowTarget(BufferState(self._tracking_uri)), free_buffer_folder(output_dir),
            OutageGuard(self._tracking_uri),
        )
        self._started = False
        self._holdings: dict[str, dict[str, int | str]] = {}
        self._notes: list[str] = []

    @property
    def run_id(self) -> str | None:
        """The MLflow run's id; None until MLflow has created it (later, after an outage at the start)."""
        return self._journal.target.state.run_id

    def start(self, settings: RunSettings, resumes: ResumedRun | None = None) -> None:
        """Open the run and record the configuration (both buffered while MLflow does not answer)."""
        if self._started:
            logger.warning("MLflow run %s is already open; start() ignored", self.run_id)
            return
        self._started = True
        shorten_http_patience()
        self._journal.write(self._open_run_record(settings, resumes))
        if self.run_id is not None:
            logger.info("MLflow run %s in experiment %r at %s", self.run_id, self._settings.experiment_name,
                        self._tracking_uri)
        config = settings.to_dict()
        self._journal.write({"kind": "params", "params": config_params(config)})
        self._journal.write({"kind": "text", "text": OmegaConf.to_yaml(config), "artifact_file": _CONFIG_ARTIFACT})

    def log_holdings(self, reports: dict[str, dict[str, int | str]]) -> None:
        """Keep all reports in one artifact (nodes may report in later rounds) and counts as metrics."""
        self._holdings.update({label: dict(report) for label, report in reports.items()})
        self._journal.write(
            {"kind": "text", "text": json.dumps(self._holdings, indent=2), "artifact_file": _HOLDINGS_ARTIFACT}
        )
        self._log_metrics(holdings_metrics(reports), step=0)

    def log_round(self, record: RoundRecord) -> None:
        """Log the round's metrics at step = round number."""
        self._log_metrics(round_metrics(record), step=record.round)

    def log_federated_evaluation(self, server_round: int, metrics: dict[str, float]) -> None:
        """Log `federated/<name>` at the step of the round whose model was evaluated."""
        self._log_metrics(federated_metrics(metrics), step=server_round)

    def log_failed_round(self, record: RoundRecord, reason: str) -> None:
        """Mark the step with `round-failed` = 1 and keep the reason as a tag and in the run's note."""
        self._notes.append(f"- Round {record.round} failed: {reason}")
        tags = {
            f"{FAILED_ROUND_TAG}.{record.round}": reason[:MAX_TAG_VAL_LENGTH],
            MLFLOW_RUN_NOTE: "\n".join(self._notes)[:MAX_TAG_VAL_LENGTH],
        }
        self._journal.write({"kind": "tags", "tags": tags})
        self._log_metrics({**round_metrics(record), ROUND_FAILED: 1.0}, step=record.round)

    def finish(self, outcome: RunOutcome) -> TrackedRun:
        """Write the local history, log the outcome, close the run with its status."""
        history_path = write_local_history(outcome.history, self._output_dir)
        if self._started:
            self._log_outcome(outcome)
            self._journal.write({"kind": "close", "status": outcome.status, "end_time": now_ms()})
            if (self._settings.log_model and self._settings.register_model and outcome.model is not None
                    and outcome.status == "FINISHED"):
                self._journal.write({"kind": "register", "name": str(self._settings.registered_model_name)})
        target = self._journal.target
        if target.registered_version is not None:
            logger.info("registered the model as %s version %s (%s)", self._settings.registered_model_name,
                        target.registered_version, CANDIDATE_ALIAS)
        tracked = TrackedRun(
            run_id=self.run_id,
            tracking_uri=self._tracking_uri,
            experiment_name=self._settings.experiment_name,
            model_uri=target.model_uri,
            registered_model_version=target.registered_version,
            ui_command=self._ui_command(),
            gaps=self._gaps(),
        )
        if tracked.gaps:
            logger.warning("%s; the local record is %s", tracked.gaps, history_path)
        if tracked.run_id is not None and not self._journal.buffered:
            logger.info(
                "MLflow run %s closed as %s; to see it: %s", tracked.run_id, outcome.status, tracked.ui_command
            )
        return tracked

    def _open_run_record(self, settings: RunSettings, resumes: ResumedRun | None) -> Record:
        # The configured tags first: they may mark a run, never overwrite what fedtriage records of it.
        tags = {**self._settings.tags, UPDATE_PROTECTION_TAG: str(settings.secure.mode),
                CODE_FINGERPRINT_TAG: code_fingerprint()}
        if settings.secure.mode is ProtectionMode.plaintext:
            tags[PLAINTEXT_UPDATES_TAG] = "true"
        if resumes is not None:
            tags[RESUMED_AFTER_ROUND_TAG] = str(resumes.after_round)
            if resumes.run_id:
                tags[RESUMES_RUN_TAG] = resumes.run_id
                self._notes.append(f"Resumes run {resumes.run_id} after its round {resumes.after_round}.")
                tags[MLFLOW_RUN_NOTE] = "\n".join(self._notes)
        return {
            "kind": "open_run", "experiment": self._settings.experiment_name,
            "run_name": self._settings.run_name or default_run_name(settings), "tags": tags,
            "sweep_id": self._settings.sweep_id, "start_time": now_ms(),
        }

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if metrics:
            self._journal.write(metrics_record(metrics, step))

    def _log_outcome(self, outcome: RunOutcome) -> None:
        """History, plot, model and checkpoint, each a record of its own: one refused costs no other."""
        self._journal.write({"kind": "text", "text": history_to_json(outcome.history), "artifact_file": HISTORY_FILE})
        with TemporaryDirectory() as folder:
            try:
                plot = plot_history(outcome.history, Path(folder) / _PLOT_FILE)
            except Exception as err:  # a plot is not worth failing the run's end for
                logger.warning("could not draw the metrics plot (%s: %s)", type(err).__name__, err)
            else:
                self._journal.write({"kind": "file", "path": str(plot), "artifact_path": _PLOT_ARTIFACT_DIR})
        if self._settings.log_model and outcome.model is not None:
            self._journal.write(
                {
                    "kind": "model", "metadata": outcome.model_metadata,
                    "input_shape": list(outcome.model_input_shape) if outcome.model_input_shape else None,
                    "outputs": outcome.model_outputs,
                },
                model=outcome.model,
            )
        if outcome.checkpoint_path is not None:
            self._journal.write(
                {"kind": "file", "path": str(outcome.checkpoint_path), "artifact_path": _CHECKPOINT_ARTIFACT_DIR}
            )

    def _gaps(self) -> str | None:
        """What MLflow lacks of this run, in words (None: everything was recorded)."""
        journal = self._journal
        if journal.off is not None:
            return f"nothing was recorded in MLflow: {journal.off}"
        if journal.buffered:
            folder = journal.buffer_folder
            return (
                f"MLflow at {self._tracking_uri} did not answer by the end of the run: {journal.buffered} tracking "
                f"records wait in {folder}; `python -m {FLUSH_MODULE} {shlex.quote(str(folder))}` sends them once "
                "it answers"
            )
        refusals = journal.guard.refusals
        if not refusals:
            return None
        return (
            f"MLflow run {self.run_id} is incomplete: {sum(refusals.values())} tracking records were refused or "
            f"could not be kept ({', '.join(f'{kind}: {count}' for kind, count in refusals.items())})"
        )

    def _ui_command(self) -> str:
        """`mlflow ui` for a database store; for a tracking server, open its page of the run."""
        if not self._tracking_uri.startswith(("http://", "https://")):
            return f"mlflow ui --backend-store-uri {shlex.quote(self._tracking_uri)}"
        url = self._tracking_uri.rstrip("/")
        if self.run_id is not None:
            url += f"/#/experiments/{self._journal.target.state.experiment_id}/runs/{self.run_id}"
        return f"python -m webbrowser {shlex.quote(url)}"
