"""Registering a run's model: a deliberate act that leaves a described, tagged candidate.

A registered version is what a unit may be asked to use for casework, so it carries
what a unit needs to judge it without opening the run: how its updates were protected,
what privacy it had, its classes, its accuracies, the fingerprints of the settings that
chose its data and of the code that trained it, and the run that made it. It starts as
the `candidate`; a coordinator moves the `approved` alias to the version it approves.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from fedtriage.errors import ConfigError
from fedtriage.tracking_uri import process_tracking_uri

CANDIDATE_ALIAS = "candidate"
APPROVED_ALIAS = "approved"
# Run tags and metrics a version's tags are copied from.
_FROM_RUN_TAGS = {"fedtriage.update_protection": "update_protection", "fedtriage.code_fingerprint": "code_fingerprint"}
_FROM_RUN_METRICS = {
    "central/eval-accuracy": "central_accuracy",
    "federated/eval-accuracy": "federated_accuracy",
    "protocol/dp-epsilon": "dp_epsilon",
}
# Settings whose values choose the data a federation trains on (nodes never send the data).
_DATA_SETTINGS = ("seed", "holdings.", "partition.")


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    tags: dict[str, str]


def register_run_model(tracking_uri: str, run_id: str, name: str) -> RegisteredVersion:
    """Register the model run `run_id` logged as version N of `name`, tagged, described, `candidate`.

    MLflow looks a logged model up through its process-wide store, whatever a client
    names: that store is pointed at `tracking_uri` for the call.
    """
    with process_tracking_uri(tracking_uri):
        return _register(MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri), run_id, name)


def _register(client: MlflowClient, run_id: str, name: str) -> RegisteredVersion:
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise ConfigError("RUN", f"no MLflow run {run_id!r} in this store ({err.message})") from err
    if run.info.status != "FINISHED":
        raise ConfigError("RUN", f"run {run_id} ended {run.info.status}: only a finished run's model is registered")
    source, model_id = _logged_model(client, run_id)
    tags = _version_tags(run)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description="Triage models trained by a fedtriage federation; `approved` marks the one for casework."
        )
    # A tracking server accepts a `models:/m-...` source only with the id of that logged model.
    version = client.create_model_version(
        name, source, run_id=run_id, tags=tags, description=_description(run, tags), model_id=model_id
    ).version
    client.set_registered_model_alias(name, CANDIDATE_ALIAS, version)
    return RegisteredVersion(name, str(version), tags)


def approve(client: MlflowClient, name: str, version: str) -> None:
    """Mark version `version` of `name` as the one approved for casework."""
    try:
        client.get_model_version(name, version)
    except MlflowException as err:
        raise ConfigError("VERSION", f"model {name!r} has no version {version!r}") from err
    client.set_registered_model_alias(name, APPROVED_ALIAS, version)


def data_fingerprint(params: dict[str, str]) -> str:
    """SHA-256 of the settings that choose the training data, for comparing runs and versions."""
    chosen = {key: value for key, value in sorted(params.items()) if key.startswith(_DATA_SETTINGS)}
    return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()


def _logged_model(client: MlflowClient, run_id: str) -> tuple[str, str]:
    """The URI and id of the model run `run_id` logged."""
    models = client.search_logged_models(experiment_ids=[client.get_run(run_id).info.experiment_id])
    for model in models:
        if model.source_run_id == run_id:
            return str(model.model_uri), str(model.model_id)
    raise ConfigError("RUN", f"run {run_id} logged no model (tracking.log_model was false)")


def _version_tags(run: Any) -> dict[str, str]:
    params = run.data.params
    tags = {"fedtriage.run_id": run.info.run_id}
    for run_tag, name in _FROM_RUN_TAGS.items():
        if run_tag in run.data.tags:
            tags[f"fedtriage.{name}"] = run.data.tags[run_tag]
    for metric, name in _FROM_RUN_METRICS.items():
        if metric in run.data.metrics:
            tags[f"fedtriage.{name}"] = f"{run.data.metrics[metric]:.4f}"
    tags["fedtriage.privacy"] = params.get("privacy.mode", "unknown")
    tags["fedtriage.classes"] = params.get("holdings.classes", "unknown")
    tags["fedtriage.rounds"] = params.get("federation.num_rounds", "unknown")
    tags["fedtriage.data_fingerprint"] = data_fingerprint(params)
    return tags


def _description(run: Any, tags: dict[str, str]) -> str:
    params = run.data.params
    epsilon = f", epsilon {tags['fedtriage.dp_epsilon']}" if "fedtriage.dp_epsilon" in tags else ""
    return (
        f"{params.get('strategy.name', '?')} over {params.get('federation.num_nodes', '?')} nodes, "
        f"{tags['fedtriage.rounds']} rounds, update protection {tags.get('fedtriage.update_protection', '?')}, "
        f"privacy {tags['fedtriage.privacy']}{epsilon}; classes {tags['fedtriage.classes']}; "
        f"central accuracy {tags.get('fedtriage.central_accuracy', '-')}, "
        f"federated accuracy {tags.get('fedtriage.federated_accuracy', '-')}; trained in run {run.info.run_id}. "
        f"Registered as the {CANDIDATE_ALIAS}: not for casework until a coordinator moves the "
        f"'{APPROVED_ALIAS}' alias to it."
    )
