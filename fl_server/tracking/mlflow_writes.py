"""Every write the tracker makes to MLflow, as a plain record, and the one place that sends it.

A record is a JSON-able dict with a `kind`; the same record is sent at once or, while MLflow
is down, kept in the tracking buffer and sent later, even by another process
(`python -m fl_server.tracking.flush`). So a record carries all it needs: the metrics' own
steps and timestamps, the run's start and end times, the paths of its files.

    open_run  experiment, run_name, tags, sweep_id, start_time   (creates the run)
    params    params {name: value}          tags     tags {name: value}
    metrics   metrics [[name, value, timestamp ms, step], ...]
    text      text, artifact_file           file     path, artifact_path
    model     path (its weights-only model file, when buffered), metadata, input_shape, outputs
    close     status, end_time              register name
"""

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.validation import MAX_METRICS_PER_BATCH, MAX_PARAMS_TAGS_PER_BATCH

from fl_server.tracking.mlflow_experiment import experiment_id
from fl_server.tracking.model_logging import check_model_file, log_model_file, log_pytorch_model
from fl_server.tracking.model_registry import register_run_model
from fl_server.tracking.sweep_parent import sweep_parent_run_id
from fl_server.tracking.tracking_buffer import BufferState

Record = dict[str, Any]
SWEEP_TAG = "fedtriage.sweep"
# Records whose fields name files: copied into the buffer with them.
FILE_FIELDS = {"file": ("path",)}

# MLflow retries a failed HTTP call 7 times with exponential backoff (minutes in all) and
# waits up to 120 s for each reply. Tracking runs between rounds, so against a dead server
# every call would stall the federation that long. A live server needs neither.
_HTTP_PATIENCE = {MLFLOW_HTTP_REQUEST_MAX_RETRIES.name: "1", MLFLOW_HTTP_REQUEST_TIMEOUT.name: "5"}

_T = TypeVar("_T")


def shorten_http_patience() -> None:
    """Apply `_HTTP_PATIENCE` unless the operator chose values (read by MLflow per request)."""
    for name, value in _HTTP_PATIENCE.items():
        os.environ.setdefault(name, value)


def now_ms() -> int:
    """MLflow's timestamps: milliseconds since the epoch."""
    return int(time.time() * 1000)


def metrics_record(metrics: dict[str, float], step: int) -> Record:
    timestamp = now_ms()
    return {"kind": "metrics", "metrics": [[name, value, timestamp, step] for name, value in metrics.items()]}


class MlflowTarget:
    """One MLflow store and the run records go to (set by the `open_run` record once sent)."""

    def __init__(self, state: BufferState) -> None:
        self.state = state
        self._client: MlflowClient | None = None
        self.model_uri: str | None = None
        self.registered_version: str | None = None

    @property
    def tracking_uri(self) -> str:
        return self.state.tracking_uri

    @property
    def client(self) -> MlflowClient:
        """Made on first use: making one may already need the store."""
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def answers(self) -> bool:
        """Whether the store answers at all: it tells an outage from MLflow refusing one record."""
        try:
            self.client.search_experiments(max_results=1)
        except Exception:  # unreachable store: HTTP, database and file errors alike
            return False
        return True

    def send(self, record: Record, model: torch.nn.Module | None = None) -> None:
        """Send `record` to MLflow (raises whatever MLflow raises). `model`: the module of a
        `model` record not buffered; a buffered one is loaded from the file it names."""
        kind = record["kind"]
        if kind == "open_run":
            self._open_run(record)
            return
        run_id = self.state.run_id
        if run_id is None:
            raise RuntimeError(f"no MLflow run to send a {kind!r} record to")
        client = self.client
        if kind == "params":
            params = [Param(name, value) for name, value in record["params"].items()]
            for chunk in _chunks(params, MAX_PARAMS_TAGS_PER_BATCH):
                client.log_batch(run_id, params=chunk)
        elif kind == "tags":
            client.log_batch(run_id, tags=[RunTag(name, value) for name, value in record["tags"].items()])
        elif kind == "metrics":
            entities = [Metric(name, value, timestamp, step) for name, value, timestamp, step in record["metrics"]]
            for chunk in _chunks(entities, MAX_METRICS_PER_BATCH):
                client.log_batch(run_id, metrics=chunk)
        elif kind == "text":
            client.log_text(run_id, record["text"], record["artifact_file"])
        elif kind == "file":
            client.log_artifact(run_id, record["path"], record["artifact_path"])
        elif kind == "model":
            self._log_model(run_id, record, model)
        elif kind == "close":
            client.set_terminated(run_id, record["status"], end_time=record["end_time"])
            if self.state.parent_run_id is not None:
                client.set_terminated(self.state.parent_run_id, "FINISHED")
        elif kind == "register":
            self.registered_version = register_run_model(self.tracking_uri, run_id, record["name"]).version
        else:
            raise ValueError(f"unknown tracking record kind {kind!r}")

    def _open_run(self, record: Record) -> None:
        client = self.client
        experiment = experiment_id(client, record["experiment"], self.tracking_uri)
        tags = dict(record["tags"])
        parent = None
        if sweep_id := record.get("sweep_id"):
            parent = sweep_parent_run_id(client, experiment, sweep_id)
            client.update_run(parent, status="RUNNING")
            tags.update({MLFLOW_PARENT_RUN_ID: parent, SWEEP_TAG: sweep_id})
        run = client.create_run(experiment, start_time=record["start_time"], tags=tags, run_name=record["run_name"])
        self.state.experiment_id, self.state.run_id, self.state.parent_run_id = experiment, run.info.run_id, parent

    def _log_model(self, run_id: str, record: Record, model: torch.nn.Module | None) -> None:
        shape = record.get("input_shape")
        described = (record.get("metadata") or {}, tuple(shape) if shape else None, record.get("outputs"))
        if model is not None:
            logged = log_pytorch_model(self.tracking_uri, run_id, model, *described)
        else:
            # The model file `write_journal` buffered, logged as it is: checked with a weights-only
            # load, so a buffer holding a pickled module (older fedtriage) is refused, never run.
            path = Path(record["path"])
            check_model_file(path)
            logged = log_model_file(self.tracking_uri, run_id, path, *described)
        self.model_uri = logged.model_uri


def _chunks(items: Sequence[_T], size: int) -> list[Sequence[_T]]:
    """MLflow caps the entities of one `log_batch` call."""
    return [items[start : start + size] for start in range(0, len(items), size)]
