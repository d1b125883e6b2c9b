"""What a trained model is, so that it can be rebuilt far from the run that trained it.

Triage loads a model on an examiner's workstation from a file or the MLflow registry;
the weights alone are not enough: it needs the architecture, the class names (what
the outputs mean) and the input the model expects. A `ModelSpec` travels with every
saved model: in checkpoints, in `final_model.pt`, and in the MLflow model's metadata.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fl_protocol.settings import ModelSettings, NodeSettings
from models.registry import build_model

MODEL_FILE_FORMAT = "fedtriage-model-1"
# Key of the spec in an MLflow model's metadata.
MODEL_SPEC_METADATA = "fedtriage_model_spec"
# The MLflow flavor of a logged model that is a model file of this format, and where in the
# logged model's folder the file is (named by the flavor's `model_file`): triage reads it
# with `load_model_file`, so loading a model from MLflow runs no pickled code.
MLFLOW_MODEL_FLAVOR = "fedtriage"
MLFLOW_MODEL_FILE = "model.pt"


@dataclass(frozen=True)
class ModelSpec:
    """Architecture, constructor parameters, output classes and input shape of a model."""

    name: str
    classes: tuple[str, ...]
    image_size: int
    channels: int
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: NodeSettings) -> "ModelSpec":
        holdings = settings.holdings
        return cls(
            name=settings.model.name,
            classes=tuple(holdings.classes or ()),
            image_size=holdings.image_size,
            channels=holdings.channels,
            params=dict(settings.model.params),
        )

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ModelSpec":
        return cls(
            name=str(raw["name"]),
            classes=tuple(str(name) for name in raw["classes"]),
            image_size=int(raw["image_size"]),
            channels=int(raw["channels"]),
            params=dict(raw.get("params") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "classes": list(self.classes),
            "image_size": self.image_size,
            "channels": self.channels,
            "params": dict(self.params),
        }

    def build(self) -> nn.Module:
        """A freshly initialised model of this spec (no weights file)."""
        return build_model(
            ModelSettings(name=self.name, params=dict(self.params), weights_path=None),
            num_classes=len(self.classes),
            in_channels=self.channels,
            image_size=self.image_size,
        )


def save_model_file(path: Path, model: nn.Module, spec: ModelSpec | None) -> Path:
    """Weights and spec in one file that loads with `torch.load(weights_only=True)`.

    `spec` None: the weights alone, for a tracker handed a bare module; such a file keeps the
    weights without pickle, but `load_model_file` refuses it, as nothing says how to rebuild it.
    """
    raw: dict[str, Any] = {"format": MODEL_FILE_FORMAT}
    if spec is not None:
        raw["model_spec"] = spec.to_dict()
    torch.save({**raw, "model_state": model.state_dict()}, path)
    return path


def load_model_file(path: Path) -> tuple[nn.Module, ModelSpec]:
    """A model saved by `save_model_file` or a round checkpoint that carries its spec."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(raw, dict) or "model_spec" not in raw or "model_state" not in raw:
        raise ValueError(f"{path} is not a fedtriage model file or checkpoint with a model spec")
    spec = ModelSpec.from_dict(raw["model_spec"])
    model = spec.build()
    model.load_state_dict(raw["model_state"])
    return model, spec
