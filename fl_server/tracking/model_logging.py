"""Log the final global model in MLflow as a weights-only model file, with its signature.

The logged model is the file `models.spec.save_model_file` writes (weights and `ModelSpec`,
read back with `torch.load(weights_only=True)`) under an MLmodel of flavor "fedtriage": an
MLflow model like any other (runs:/ and models:/ URIs, the registry, the UI) that loads
without unpickling code. `mlflow.pytorch`'s pickle format ran code on every machine that
loaded it; its "pt2" needs an example input, which tracking does not have.

Logging a model works only through MLflow's process-wide state (tracking URI, active run),
unlike the rest of tracking, which names its store and run explicitly. That state is set here
for the duration of the call and restored afterwards.
"""

import copy
import itertools
import logging
import pickle
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.models import Model, ModelSignature
from mlflow.models.model import MLMODEL_FILE_NAME
from mlflow.types import Schema, TensorSpec

from fedtriage.tracking_uri import process_tracking_uri
from models.spec import (
    MLFLOW_MODEL_FILE,
    MLFLOW_MODEL_FLAVOR,
    MODEL_FILE_FORMAT,
    MODEL_SPEC_METADATA,
    ModelSpec,
    save_model_file,
)


@dataclass
class LoggedModel:
    """Where the logged model lives and, if registered, its registry version."""

    model_uri: str
    registered_model_version: str | None


def write_model_file(path: Path, model: torch.nn.Module, metadata: dict[str, Any] | None = None) -> Path:
    """`model` as the file MLflow gets: on CPU, with the spec `metadata` carries (if any)."""
    raw_spec = (metadata or {}).get(MODEL_SPEC_METADATA)
    return save_model_file(path, _on_cpu(model), ModelSpec.from_dict(raw_spec) if raw_spec else None)


def check_model_file(path: Path) -> None:
    """Raise ValueError unless `path` is a model file of `write_model_file`'s format. The load is
    weights-only: a buffer an older fedtriage left (a pickled module) is refused, never run."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(f"{path} is not a weights-only model file: {err}") from err
    if not isinstance(raw, dict) or raw.get("format") != MODEL_FILE_FORMAT or "model_state" not in raw:
        raise ValueError(f"{path} is not a fedtriage model file ({MODEL_FILE_FORMAT})")


def log_pytorch_model(
    tracking_uri: str,
    run_id: str,
    model: torch.nn.Module,
    metadata: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    outputs: int | None = None,
) -> LoggedModel:
    """Log `model` as the model file of `log_model_file`; see there."""
    with TemporaryDirectory() as folder:
        path = write_model_file(Path(folder) / MLFLOW_MODEL_FILE, model, metadata)
        return log_model_file(tracking_uri, run_id, path, metadata, input_shape, outputs)


def log_model_file(
    tracking_uri: str,
    run_id: str,
    path: Path,
    metadata: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    outputs: int | None = None,
) -> LoggedModel:
    """Log the model file at `path` (`write_model_file`) as the model named "model" of run `run_id`;
    with `input_shape` and `outputs`, its signature (a batch of float32 images in, one score per
    class out), so users see what it takes. `metadata` (the spec) goes into the MLmodel as well,
    for whoever looks at the model without loading it.

    Leaving `start_run` marks the run FINISHED; the caller sets the run's real status after.
    Registering is a separate, deliberate step (`model_registry`).
    """
    flavor = _ModelFileFlavor(path, _signature(input_shape, outputs))
    with process_tracking_uri(tracking_uri), mlflow.start_run(run_id=run_id):
        # `start_run` makes the run the active one: the logged model lands in its experiment.
        info = Model.log(None, flavor, name="model", metadata=metadata, flavor_name=MLFLOW_MODEL_FLAVOR)
    return LoggedModel(info.model_uri, None)


class _ModelFileFlavor:
    """What `Model.log` asks of a flavor: write the model's folder (the file and its MLmodel)."""

    def __init__(self, model_file: Path, signature: ModelSignature | None) -> None:
        self.model_file = model_file
        self.signature = signature

    def save_model(self, path: str, mlflow_model: Model, **_: Any) -> None:
        folder = Path(path)
        folder.mkdir(parents=True)
        shutil.copyfile(self.model_file, folder / MLFLOW_MODEL_FILE)
        if self.signature is not None:
            mlflow_model.signature = self.signature
        mlflow_model.add_flavor(MLFLOW_MODEL_FLAVOR, model_file=MLFLOW_MODEL_FILE, format=MODEL_FILE_FORMAT)
        mlflow_model.save(str(folder / MLMODEL_FILE_NAME))


def _signature(input_shape: tuple[int, ...] | None, outputs: int | None) -> ModelSignature | None:
    if input_shape is None or outputs is None:
        return None
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *input_shape), "images")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, outputs), "class_scores")]),
    )


def _on_cpu(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, or a CPU copy: a registered model must load where there is no GPU."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    if all(tensor.device.type == "cpu" for tensor in tensors):
        return model
    return copy.deepcopy(model).cpu()


@contextmanager
def quiet_logger(logger_name: str) -> Iterator[None]:
    """Silence a logger below errors for a while (urllib3's line per retried request, for one)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
