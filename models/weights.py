"""Starting a model from a local state dict saved from a model of another shape.

A file saved from the same architecture but another number of classes or input
channels differs only in its first conv and its classifier, so every tensor whose name
and shape match is copied and the rest keep their fresh initialisation.
"""

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger("fedtriage.models")

# Keys under which training checkpoints commonly nest the model's state dict.
_NESTED_STATE_KEYS = ("model_state", "state_dict")


@dataclass(frozen=True)
class WeightsLoadReport:
    """Which tensors of a weights file went into the model, and which did not."""

    loaded: tuple[str, ...]
    shape_mismatch: tuple[str, ...]
    not_in_model: tuple[str, ...]
    not_in_file: tuple[str, ...]


def load_matching_weights(model: nn.Module, path: Path) -> WeightsLoadReport:
    """Copy into `model` the tensors of the file at `path` whose names and shapes match.

    The file is read with `weights_only=True`, so it can hold tensors but no code.
    Raises `FileNotFoundError` when there is no file and `ValueError` when it holds no
    state dict or none of its tensors fits the model.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        reason = type(err).__name__
        raise ValueError(f"{path} is not a state dict torch.load can read with weights_only=True ({reason})") from err
    state = _state_dict_of(content, path)

    own = model.state_dict()
    matched = {name: tensor for name, tensor in state.items() if name in own and own[name].shape == tensor.shape}
    report = WeightsLoadReport(
        loaded=tuple(matched),
        shape_mismatch=tuple(name for name, tensor in state.items() if name in own and name not in matched),
        not_in_model=tuple(name for name in state if name not in own),
        not_in_file=tuple(name for name in own if name not in state),
    )
    if not matched:
        raise ValueError(
            f"no tensor matches model {type(model).__name__}: {path} holds {len(state)} tensors, "
            f"{len(report.shape_mismatch)} with matching names but other shapes"
        )
    model.load_state_dict(matched, strict=False)
    logger.info(
        "loaded %d of %d model tensors from %s; skipped for shape mismatch: %s",
        len(report.loaded),
        len(own),
        path,
        ", ".join(report.shape_mismatch) or "none",
    )
    if report.not_in_model:
        logger.info("ignored %d tensors of %s the model does not have", len(report.not_in_model), path)
    return report


def _state_dict_of(content: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state dict, or of one nested under a checkpoint key."""
    if isinstance(content, Mapping):
        for key in _NESTED_STATE_KEYS:
            if isinstance(content.get(key), Mapping):
                content = content[key]
                break
    if not isinstance(content, Mapping):
        raise ValueError(f"{path} holds a {type(content).__name__}, not a state dict")
    tensors = {str(name): value for name, value in content.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path} holds no tensors")
    return tensors
