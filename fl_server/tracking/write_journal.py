"""Sends tracking records to MLflow in order, buffering them on disk while MLflow is down.

Why: a tracking outage must not stop training, and must not lose what was tracked either.
A record is sent at once while nothing waits; when MLflow does not answer, it goes to the
tracking buffer (`tracking_buffer`), and so does every later record, so that order is kept.
Each later write first retries the buffer (rounds are its clock); once MLflow answers, the
buffered records go out in order, with their original steps and timestamps, and the buffer
is deleted. A record MLflow answers but refuses is not buffered: the store is asked whether
it answers at all, which tells an outage from a refusal.
"""

from pathlib import Path

import torch

from fl_server.tracking.mlflow_writes import FILE_FIELDS, MlflowTarget, Record
from fl_server.tracking.model_logging import quiet_logger, write_model_file
from fl_server.tracking.outage_guard import OutageGuard
from fl_server.tracking.tracking_buffer import TrackingBuffer

_MODEL_FILE = "model.pt"
# urllib3 warns of every retry of an MLflow request; the guard's one warning per outage says it all.
_HTTP_RETRIES_LOGGER = "urllib3.connectionpool"


class WriteJournal:
    """The tracker's way to MLflow: send now, or keep in order until MLflow answers."""

    def __init__(self, target: MlflowTarget, buffer_folder: Path, guard: OutageGuard,
                 buffer: TrackingBuffer | None = None) -> None:
        self.target = target
        self.guard = guard
        self._folder = buffer_folder
        self._buffer = buffer
        # Why no MLflow run exists, once MLflow refused to create one: later records are dropped.
        self.off: str | None = None

    @property
    def buffered(self) -> int:
        """Records waiting in the buffer."""
        return len(self._buffer) if self._buffer is not None else 0

    @property
    def buffer_folder(self) -> Path:
        return self._folder

    def write(self, record: Record, model: torch.nn.Module | None = None) -> None:
        """Send `record` (after whatever waits), or buffer it; never raises for MLflow's sake.
        `model`: the module of a `model` record."""
        if self.off is not None:
            return
        if self._buffer is not None:
            self.retry()
        if self._buffer is None and self._send(record, model):
            return
        if self.off is None:
            try:
                self._keep(record, model)
            except Exception as err:  # a full disk, a model that cannot be saved: lose the record, not the run
                self.guard.refused(record["kind"], err, f"could not be kept in {self._folder}")

    def retry(self) -> bool:
        """Send what waits, in order, until MLflow stops answering; True once nothing waits."""
        buffer = self._buffer
        if buffer is None:
            return True
        for record in buffer.pending():
            if not self._send(record, None):
                return False
            buffer.state.sent += 1
            buffer.save_state()
            if self.off is not None:
                break
        sent = buffer.state.sent
        buffer.remove()
        self._buffer = None
        if self.off is None:
            self.guard.came_back(sent, self.target.state.run_id)
        return True

    def _send(self, record: Record, model: torch.nn.Module | None) -> bool:
        """Send one record; False if MLflow does not answer (a refusal counts as done)."""
        try:
            with quiet_logger(_HTTP_RETRIES_LOGGER):
                self.target.send(record, model)
        except Exception as err:  # MLflow, HTTP, database and file errors alike
            with quiet_logger(_HTTP_RETRIES_LOGGER):
                answers = self.target.answers()
            if not answers:
                self.guard.went_down(err, self._folder)
                return False
            self.guard.refused(record["kind"], err)
            if record["kind"] == "open_run":
                self.off = (f"MLflow at {self.target.tracking_uri} refused to create the run "
                            f"({type(err).__name__}: {err})")
        return True

    def _keep(self, record: Record, model: torch.nn.Module | None) -> None:
        if self._buffer is None:
            self.target.state.sent = 0
            self._buffer = TrackingBuffer.create(self._folder, self.target.state)
        if model is not None:
            # Weights and spec, not the pickled module: sending it later unpickles nothing.
            path = write_model_file(self._buffer.file_slot() / _MODEL_FILE, model, record.get("metadata"))
            record = {**record, "path": str(path)}
        self._buffer.append(record, FILE_FIELDS.get(record["kind"], ()))

