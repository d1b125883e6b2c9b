"""Log the final global model as an MLflow PyTorch model, with its signature.

`mlflow.pytorch.log_model` works only through MLflow's process-wide state (tracking URI,
active run), unlike the rest of tracking, which names its store and run explicitly. That
state is set here for the duration of the call and restored afterwards.
"""

import copy
import itertools
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.pytorch
import numpy as np
import torch
from mlflow.environment_variables import MLFLOW_TRACKING_URI
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec


@dataclass
class LoggedModel:
    """Where the logged model lives and, if registered, its registry version."""

    model_uri: str
    registered_model_version: str | None


def log_pytorch_model(
    tracking_uri: str,
    run_id: str,
    model: torch.nn.Module,
    metadata: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
    outputs: int | None = None,
) -> LoggedModel:
    """Log `model` under the name "model" in run `run_id`; with `input_shape` and `outputs`, its
    signature (a batch of float32 images in, one score per class out), so users see what it takes.

    Leaving `start_run` marks the run FINISHED; the caller sets the run's real status after.
    Registering is a separate, deliberate step (`model_registry`).

    The model is pickled: the safe "pt2" format needs an example input, and tracking knows
    nothing of the model's inputs. The requirements are given rather than inferred: inference
    reloads the model in a subprocess (slow) to guess what is already known.
    """
    with process_tracking_uri(tracking_uri), mlflow.start_run(run_id=run_id), quiet_logger("mlflow.pytorch"):
        info = mlflow.pytorch.log_model(
            _on_cpu(model),
            name="model",
            serialization_format="pickle",
            metadata=metadata,
            signature=_signature(input_shape, outputs),
            pip_requirements=mlflow.pytorch.get_default_pip_requirements(),
        )
    return LoggedModel(info.model_uri, None)


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
    """Silence a logger below errors for a while: here MLflow's advice about the pickle format chosen above."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def process_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking URI at `tracking_uri`, then point it back."""
    previous_env = os.environ.get(MLFLOW_TRACKING_URI.name)
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        # `set_tracking_uri` also writes the environment variable; undo both.
        mlflow.set_tracking_uri(previous if previous != previous_env else None)  # type: ignore[arg-type]
        if previous_env is None:
            os.environ.pop(MLFLOW_TRACKING_URI.name, None)
        else:
            os.environ[MLFLOW_TRACKING_URI.name] = previous_env
