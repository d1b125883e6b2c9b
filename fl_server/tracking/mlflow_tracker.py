"""MLflow as the implementation of the tracking seam (`tracker.RunTracker`).

Every call names its store and run explicitly through an `MlflowClient`; the only use
of MLflow's process-wide state is model logging (see `model_logging`). Every call is
guarded (see `outage_guard`): MLflow being down costs the run its MLflow record, never
its training. `<output_dir>/history.json` is written whatever MLflow does.
"""

import logging
import os
import shlex
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TypeVar

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.environment_variables import (
    MLFLOW_HTTP_REQUEST_MAX_RETRIES,
    MLFLOW_HTTP_REQUEST_TIMEOUT,
    MLFLOW_TRACKING_URI,
)
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH, MAX_TAG_VAL_LENGTH
from omegaconf import OmegaConf

from fedtriage.environment import disable_phone_home
from fedtriage.fingerprint import code_fingerprint
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.settings import RunSettings, TrackingSettings
from fl_server.round_record import RoundRecord
from fl_server.tracking.local_history import HISTORY_FILE, history_to_json, write_local_history
from fl_server.tracking.mlflow_experiment import experiment_id
from fl_server.tracking.model_logging import LoggedModel, log_pytorch_model
from fl_server.tracking.model_registry import CANDIDATE_ALIAS, register_run_model
from fl_server.tracking.outage_guard import OutageGuard
from fl_server.tracking.plots import plot_history
from fl_server.tracking.round_metrics import ROUND_FAILED, federated_metrics, holdings_metrics, round_metrics
from fl_server.tracking.run_params import config_params
from fl_server.tracking.sweep_parent import sweep_parent_run_id
from fl_server.tracking.tracker import ResumedRun, RunOutcome, TrackedRun

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

UPDATE_PROTECTION_TAG = "fedtriage.update_protection"
# Set to "true" when updates travel in plaintext, so such runs can be found with one search.
PLAINTEXT_UPDATES_TAG = "fedtriage.plaintext_updates"
SWEEP_TAG = "fedtriage.sweep"
# `fedtriage <version> sha256:<sources>`: the code that trained the run's model.
CODE_FINGERPRINT_TAG = "fedtriage.code_fingerprint"
# `fedtriage.failed_round.<round>` holds the reason a round failed.
FAILED_ROUND_TAG = "fedtriage.failed_round"
# A resumed run: the run it continues, and the round that run stopped after.
RESUMES_RUN_TAG = "fedtriage.resumes_run"
RESUMED_AFTER_ROUND_TAG = "fedtriage.resumed_after_round"

# MLflow retries a failed HTTP call 7 times with exponential backoff (minutes in all) and
# waits up to 120 s for each reply. Tracking runs between rounds, so against a dead server
# every call would stall the federation that long. A live server needs neither.
_HTTP_PATIENCE = {MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "1", MLFLOW_HTTP_REQUEST_TIMEOUT.name: "5"}

_T = TypeVar("_T")


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
    """Records one federation run as an MLflow run (a child run when part of a sweep)."""

    def __init__(self, settings: TrackingSettings, output_dir: Path) -> None:
        disable_phone_home()
        self._settings = settings
        self._output_dir = output_dir
        self._tracking_uri = resolve_tracking_uri(settings.tracking_uri)
        self._guard = OutageGuard(self._tracking_uri)
        self._client: MlflowClient | None = None
        self._run_id: str | None = None
        self._experiment_id: str | None = None
        self._parent_run_id: str | None = None
        self._holdings: dict[str, dict[str, int | str]] = {}
        self._notes: list[str] = []
        # Why no MLflow run could be opened, if none could.
        self._unreachable: str | None = None

    @property
    def run_id(self) -> str | None:
        return self._run_id

    def start(self, settings: RunSettings, resumes: ResumedRun | None = None) -> None:
        """Open the run; if that fails, warn loudly and track nothing for this run."""
        if self._run_id is not None:
            logger.warning("MLflow run %s is already open; start() ignored", self._run_id)
            return
        _shorten_http_patience()
        try:
            self._open_run(settings, resumes)
        except Exception as err:  # any failure means: no MLflow record for this run
            self._client, self._run_id, self._parent_run_id = None, None, None
            self._unreachable = f"no run could be opened at {self._tracking_uri} ({type(err).__name__}: {err})"
            logger.warning(
                "MLflow tracking is OFF for this run: no run could be opened at %s (%s: %s). "
                "Training goes on; the local record will be %s.",
                self._tracking_uri,
                type(err).__name__,
                err,
                self._output_dir / HISTORY_FILE,
            )
            return
        logger.info(
            "MLflow run %s in experiment %r at %s",
            self._run_id,
            self._settings.experiment_name,
            self._tracking_uri,
        )
        with self._guard.attempt("log the configuration"):
            self._log_configuration(settings)

    def log_holdings(self, reports: dict[str, dict[str, int | str]]) -> None:
        """Keep all reports in one artifact (nodes may report in later rounds) and counts as metrics."""
        if self._client is None or self._run_id is None:
            return
        self._holdings.update({label: dict(report) for label, report in reports.items()})
        with self._guard.attempt("log holdings reports"):
            self._client.log_dict(self._run_id, self._holdings, _HOLDINGS_ARTIFACT)
            self._log_metrics(holdings_metrics(reports), step=0)

    def log_round(self, record: RoundRecord) -> None:
        """Log the round's metrics at step = round number."""
        with self._guard.attempt("log round metrics"):
            self._log_metrics(round_metrics(record), step=record.round)

    def log_federated_evaluation(self, server_round: int, metrics: dict[str, float]) -> None:
        """Log `federated/<name>` at the step of the round whose model was evaluated."""
        with self._guard.attempt("log federated evaluation"):
            self._log_metrics(federated_metrics(metrics), step=server_round)

    def log_failed_round(self, record: RoundRecord, reason: str) -> None:
        """Mark the step with `round-failed` = 1 and keep the reason as a tag and in the run's note."""
        if self._client is None or self._run_id is None:
            return
        self._notes.append(f"- Round {record.round} failed: {reason}")
        tags = [
            RunTag(f"{FAILED_ROUND_TAG}.{record.round}", reason[:MAX_TAG_VAL_LENGTH]),
            RunTag(MLFLOW_RUN_NOTE, "\n".join(self._notes)[:MAX_TAG_VAL_LENGTH]),
        ]
        with self._guard.attempt("log a failed round"):
            self._client.log_batch(self._run_id, tags=tags)
            self._log_metrics({**round_metrics(record), ROUND_FAILED: 1.0}, step=record.round)

    def finish(self, outcome: RunOutcome) -> TrackedRun:
        """Write the local history, log the outcome, close the run with its status."""
        history_path = write_local_history(outcome.history, self._output_dir)
        logged_model = None
        if self._client is not None and self._run_id is not None:
            logged_model = self._log_outcome(self._client, self._run_id, outcome)
            with self._guard.attempt("close the run"):
                self._client.set_terminated(self._run_id, outcome.status)
                if self._parent_run_id is not None:
                    self._client.set_terminated(self._parent_run_id, "FINISHED")
            if logged_model is not None and outcome.status == "FINISHED" and self._settings.register_model:
                with self._guard.attempt("register the model"):
                    registered = register_run_model(
                        self._tracking_uri, self._run_id, str(self._settings.registered_model_name)
                    )
                    logged_model = LoggedModel(logged_model.model_uri, registered.version)
                    logger.info("registered the model as %s version %s (%s)", registered.name, registered.version,
                                CANDIDATE_ALIAS)
        tracked = TrackedRun(
            run_id=self._run_id,
            tracking_uri=self._tracking_uri,
            experiment_name=self._settings.experiment_name,
            model_uri=logged_model.model_uri if logged_model else None,
            registered_model_version=logged_model.registered_model_version if logged_model else None,
            ui_command=self._ui_command(),
            gaps=self._gaps(),
        )
        if tracked.gaps:
            logger.warning("%s; the local record is %s", tracked.gaps, history_path)
        if tracked.run_id is not None:
            logger.info(
                "MLflow run %s closed as %s; to see it: %s", tracked.run_id, outcome.status, tracked.ui_command
            )
        return tracked

    def _open_run(self, settings: RunSettings, resumes: ResumedRun | None) -> None:
        client = MlflowClient(tracking_uri=self._tracking_uri)
        experiment = experiment_id(client, self._settings.experiment_name, self._tracking_uri)
        tags = {UPDATE_PROTECTION_TAG: str(settings.secure.mode), CODE_FINGERPRINT_TAG: code_fingerprint()}
        if settings.secure.mode is ProtectionMode.plaintext:
            tags[PLAINTEXT_UPDATES_TAG] = "true"
        if resumes is not None:
            tags[RESUMED_AFTER_ROUND_TAG] = str(resumes.after_round)
            if resumes.run_id:
                tags[RESUMES_RUN_TAG] = resumes.run_id
                self._notes.append(f"Resumes run {resumes.run_id} after its round {resumes.after_round}.")
                tags[MLFLOW_RUN_NOTE] = "\n".join(self._notes)
        if sweep_id := self._settings.sweep_id:
            parent = sweep_parent_run_id(client, experiment, sweep_id)
            client.update_run(parent, status="RUNNING")
            tags.update({MLFLOW_PARENT_RUN_ID: parent, SWEEP_TAG: sweep_id})
            self._parent_run_id = parent
        run = client.create_run(
            experiment, run_name=self._settings.run_name or default_run_name(settings), tags=tags
        )
        self._client, self._experiment_id, self._run_id = client, experiment, run.info.run_id

    def _log_configuration(self, settings: RunSettings) -> None:
        assert self._client is not None and self._run_id is not None
        config = settings.to_dict()
        params = [Param(name, value) for name, value in config_params(config).items()]
        for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
            self._client.log_batch(self._run_id, params=chunk)
        self._client.log_text(self._run_id, OmegaConf.to_yaml(config), _CONFIG_ARTIFACT)

    def _log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self._client is None or self._run_id is None or not metrics:
            return
        timestamp = int(time.time() * 1000)
        entities = [Metric(name, value, timestamp, step) for name, value in metrics.items()]
        for chunk in _chunks(entities, MAX_METRICS_PER_BATCH):
            self._client.log_batch(self._run_id, metrics=chunk)

    def _log_outcome(self, client: MlflowClient, run_id: str, outcome: RunOutcome) -> LoggedModel | None:
        """Each piece separately guarded: a failed model upload must not cost the plot."""
        with self._guard.attempt("log the history"):
            client.log_text(run_id, history_to_json(outcome.history), HISTORY_FILE)
        with self._guard.attempt("log the metrics plot"), TemporaryDirectory() as folder:
            plot = plot_history(outcome.history, Path(folder) / _PLOT_FILE)
            client.log_artifact(run_id, str(plot), _PLOT_ARTIFACT_DIR)
        logged_model = None
        if self._settings.log_model and outcome.model is not None:
            with self._guard.attempt("log the final model"):
                logged_model = log_pytorch_model(
                    self._tracking_uri, run_id, outcome.model, outcome.model_metadata, outcome.model_input_shape,
                    outcome.model_outputs,
                )
        if outcome.checkpoint_path is not None:
            with self._guard.attempt("log the final checkpoint"):
                client.log_artifact(run_id, str(outcome.checkpoint_path), _CHECKPOINT_ARTIFACT_DIR)
        return logged_model

    def _gaps(self) -> str | None:
        """What MLflow lacks of this run, in words (None: everything was recorded)."""
        if self._unreachable is not None:
            return f"nothing was recorded in MLflow: {self._unreachable}"
        failures = self._guard.failures
        if not failures:
            return None
        return (
            f"MLflow run {self._run_id} is incomplete: {sum(failures.values())} tracking calls failed "
            f"({', '.join(f'{action}: {count}' for action, count in failures.items())})"
        )

    def _ui_command(self) -> str:
        """`mlflow ui` for a database store; for a tracking server, open its page of the run."""
        if not self._tracking_uri.startswith(("http://", "https://")):
            return f"mlflow ui --backend-store-uri {shlex.quote(self._tracking_uri)}"
        url = self._tracking_uri.rstrip("/")
        if self._run_id is not None:
            url += f"/#/experiments/{self._experiment_id}/runs/{self._run_id}"
        return f"python -m webbrowser {shlex.quote(url)}"


def _shorten_http_patience() -> None:
    """Apply `_HTTP_PATIENCE` unless the operator chose values (read by MLflow per request)."""
    for name, value in _HTTP_PATIENCE.items():
        os.environ.setdefault(name, value)


def _chunks(items: Sequence[_T], size: int) -> list[Sequence[_T]]:
    """MLflow caps the entities of one `log_batch` call."""
    return [items[start : start + size] for start in range(0, len(items), size)]
