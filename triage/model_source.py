"""Where the triage model comes from: a file, an MLflow model URI, or a registered version.

Whatever the source, triage gets the module, its `ModelSpec` (classes, input size)
and a name and version to write into every report, so a ranking can always be traced
to the model that produced it.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from fedtriage.errors import ConfigError
from media.hashes import hash_file
from models import MODEL_SPEC_METADATA, ModelSpec, load_model_file


@dataclass
class TriageModel:
    """A model ready to score, and how reports name it."""

    module: nn.Module
    spec: ModelSpec
    name: str
    version: str

    @property
    def weights_sha256(self) -> str:
        """SHA-256 over the model's named tensors: the same weights give the same value, whatever
        the source (a file, a run, a registered version), for the record of which model scored."""
        digest = hashlib.sha256()
        for name, tensor in self.module.state_dict().items():
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()


def load_triage_model(source: str, version: str | None, tracking_uri: str | None) -> TriageModel:
    """`source`: a model file, `models:/<name>/<version>`, `models:/<name>@<alias>` (e.g. `approved`),
    `runs:/<id>/model`, or a registered name.

    A registered name needs `version` (`model_version`); MLflow sources read from
    `tracking_uri` (else MLflow's own resolution).
    """
    path = Path(source).expanduser()
    if path.is_file():
        try:
            module, spec = load_model_file(path)
        except (ValueError, RuntimeError, OSError) as err:
            raise ConfigError("model", f"{path} cannot be loaded: {err}") from err
        return TriageModel(module, spec, name=path.name, version=_file_version(path))
    if "/" not in source and ":" not in source:
        if not version:
            raise ConfigError("model_version", f"give the version of registered model {source!r}")
        return _from_mlflow(f"models:/{source}/{version}", tracking_uri, source, version)
    if source.startswith(("models:/", "runs:/")):
        if not source.startswith("models:/"):
            return _from_mlflow(source, tracking_uri, source, "-")
        name, _, label = source.removeprefix("models:/").partition("/")
        if "@" in name:
            name, alias = name.split("@", 1)
            label = f"{_version_of_alias(name, alias, tracking_uri)} (@{alias})"
        return _from_mlflow(source, tracking_uri, name, label or "-")
    raise ConfigError("model", f"{source!r} is neither a model file nor an MLflow model URI (models:/ or runs:/)")


def _version_of_alias(name: str, alias: str, tracking_uri: str | None) -> str:
    """The version an alias points at now: reports name the version, which an alias does not fix."""
    from mlflow import MlflowClient

    try:
        return str(MlflowClient(tracking_uri).get_model_version_by_alias(name, alias).version)
    except Exception as err:  # MLflow raises many kinds: all mean "no such alias here"
        raise ConfigError("model", f"registered model {name!r} has no version marked @{alias}: {err}") from err


def _from_mlflow(uri: str, tracking_uri: str | None, name: str, version: str) -> TriageModel:
    import mlflow  # only MLflow sources need it

    try:
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        info = mlflow.models.get_model_info(uri)
        module = mlflow.pytorch.load_model(uri, map_location="cpu")
    except Exception as err:  # MLflow raises many kinds: all mean "cannot load this model"
        raise ConfigError("model", f"MLflow could not load {uri}: {err}") from err
    metadata = info.metadata or {}
    if MODEL_SPEC_METADATA not in metadata:
        raise ConfigError("model", f"{uri} carries no fedtriage model spec (classes, input size) in its metadata")
    return TriageModel(module, ModelSpec.from_dict(metadata[MODEL_SPEC_METADATA]), name, version)


def _file_version(path: Path) -> str:
    """A file has no registry version: name it by the first bytes of its SHA-256."""
    return f"sha256:{hash_file(path, sha256=True).sha256[:16]}"
