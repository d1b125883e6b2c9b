"""Where the triage model comes from: a file, an MLflow model URI, or a registered version.

Whatever the source, triage gets the module, its `ModelSpec` (classes, input size)
and a name and version to write into every report, so a ranking can always be traced
to the model that produced it.

Loading a model runs no code it carries: a file and an MLflow model of flavor "fedtriage"
are weights-only model files (`models.spec`). A pickled `mlflow.pytorch` model (as fedtriage
logged before) runs code when loaded, so it loads only when the examiner says
`allow_pickle=true`, and then with a warning.
"""

import hashlib
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from torch import nn

from fedtriage.errors import ConfigError
from fedtriage.tracking_uri import process_tracking_uri
from media.hashes import hash_file
from models import MODEL_SPEC_METADATA, ModelSpec, load_model_file
from models.spec import MLFLOW_MODEL_FLAVOR

# The flavor, and the file in its data folder, of a model `mlflow.pytorch` pickled.
_PYTORCH_FLAVOR = "pytorch"
_PICKLED_PYTORCH_FILE = "model.pth"


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


def load_triage_model(
    source: str, version: str | None, tracking_uri: str | None, allow_pickle: bool = False
) -> TriageModel:
    """`source`: a model file, `models:/<name>/<version>`, `models:/<name>@<alias>` (e.g. `approved`),
    `runs:/<id>/model`, or a registered name.

    A registered name needs `version` (`model_version`); MLflow sources read from
    `tracking_uri` (else MLflow's own resolution). `allow_pickle`: load a pickled
    `mlflow.pytorch` model too (it runs code), with a warning.
    """
    path = Path(source).expanduser()
    if path.is_file():
        module, spec = _model_file(path, str(path))
        return TriageModel(module, spec, name=path.name, version=_file_version(path))
    if "/" not in source and ":" not in source:
        if not version:
            raise ConfigError("model_version", f"give the version of registered model {source!r}")
        return _from_mlflow(f"models:/{source}/{version}", tracking_uri, allow_pickle, source, version)
    if source.startswith(("models:/", "runs:/")):
        if not source.startswith("models:/"):
            return _from_mlflow(source, tracking_uri, allow_pickle, source, "-")
        name, _, label = source.removeprefix("models:/").partition("/")
        if "@" in name:
            name, alias = name.split("@", 1)
            label = f"{_version_of_alias(name, alias, tracking_uri)} (@{alias})"
        return _from_mlflow(source, tracking_uri, allow_pickle, name, label or "-")
    raise ConfigError("model", f"{source!r} is neither a model file nor an MLflow model URI (models:/ or runs:/)")


def _version_of_alias(name: str, alias: str, tracking_uri: str | None) -> str:
    """The version an alias points at now: reports name the version, which an alias does not fix."""
    from mlflow import MlflowClient

    try:
        return str(MlflowClient(tracking_uri).get_model_version_by_alias(name, alias).version)
    except Exception as err:  # MLflow raises many kinds: all mean "no such alias here"
        raise ConfigError("model", f"registered model {name!r} has no version marked @{alias}: {err}") from err


def _from_mlflow(uri: str, tracking_uri: str | None, allow_pickle: bool, name: str, version: str) -> TriageModel:
    """The model at `uri`, downloaded: its model file, or (only if allowed) its pickled module."""
    import mlflow  # only MLflow sources need it

    with TemporaryDirectory(prefix="fedtriage-model-") as folder:
        try:
            with process_tracking_uri(tracking_uri):
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=uri, dst_path=folder, tracking_uri=tracking_uri, registry_uri=tracking_uri
                    )
                )
            description = mlflow.models.Model.load(str(local))
        except Exception as err:  # MLflow raises many kinds: all mean "cannot load this model"
            raise ConfigError("model", f"MLflow could not load {uri}: {err}") from err
        flavors = description.flavors
        if MLFLOW_MODEL_FLAVOR in flavors:
            model_file = (local / str(flavors[MLFLOW_MODEL_FLAVOR]["model_file"])).resolve()
            if not model_file.is_relative_to(local.resolve()):  # the MLmodel names a file of its own model
                raise ConfigError("model", f"{uri} names a model file outside its own folder")
            module, spec = _model_file(model_file, uri)
            return TriageModel(module, spec, name, version)
        if _PYTORCH_FLAVOR not in flavors:
            raise ConfigError("model", f"{uri} is not a fedtriage model (flavors: {', '.join(flavors) or 'none'})")
        data = local / str(flavors[_PYTORCH_FLAVOR].get("model_data", "data"))
        return _pickled(uri, local, data, description.metadata or {}, allow_pickle, name, version)


def _model_file(path: Path, source: str) -> tuple[nn.Module, ModelSpec]:
    """A weights-only model file; what is no such file (a pickle among them) is a `model` error."""
    try:
        return load_model_file(path)
    except (ValueError, RuntimeError, OSError, pickle.UnpicklingError) as err:
        raise ConfigError("model", f"{source} cannot be loaded: {err}") from err


def _pickled(
    uri: str, local: Path, data: Path, metadata: dict[str, Any], allow_pickle: bool, name: str, version: str
) -> TriageModel:
    """An `mlflow.pytorch` model in `local` (its files in `data`): refused unless `allow_pickle`,
    since loading it runs its code."""
    import mlflow.pytorch

    pickled = (data / _PICKLED_PYTORCH_FILE).is_file()
    what = (
        "a pickled model, which runs code when loaded"
        if pickled
        else ("an mlflow.pytorch model, which may run code when loaded")
    )
    if not allow_pickle:
        raise ConfigError("model", f"{uri} is {what}; pass allow_pickle=true if you trust where it came from")
    if MODEL_SPEC_METADATA not in metadata:
        raise ConfigError("model", f"{uri} carries no fedtriage model spec (classes, input size) in its metadata")
    # Said before loading: whatever the file runs, the examiner was told first.
    print(f"fedtriage: warning: model: loading {uri}, {what} (allow_pickle=true)", file=sys.stderr, flush=True)
    try:
        module = mlflow.pytorch.load_model(str(local), map_location="cpu")
    except Exception as err:  # MLflow raises many kinds: all mean "cannot load this model"
        raise ConfigError("model", f"MLflow could not load {uri}: {err}") from err
    return TriageModel(module, ModelSpec.from_dict(metadata[MODEL_SPEC_METADATA]), name, version)


def _file_version(path: Path) -> str:
    """A file has no registry version: name it by the first bytes of its SHA-256."""
    return f"sha256:{hash_file(path, sha256=True).sha256[:16]}"
