"""The MLflow experiment a run goes into, created on first use.

A new experiment in a local SQLite store keeps its artifacts next to the database file
(`<db folder>/mlartifacts/<experiment>`), so the store is one self-contained folder and
nothing lands in whatever directory the server happens to run in.
"""

from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import LifecycleStage
from mlflow.exceptions import MlflowException

from fl_server.tracking.names import key_segment

_SQLITE_PREFIX = "sqlite:///"
# The name `mlflow server` gives its own artifact folder.
_ARTIFACTS_FOLDER = "mlartifacts"


# MLflow 3 opens an experiment on its GenAI pages unless told it holds model training runs.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The id of the active experiment `name`, created if missing, marked as one of training runs."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(
                name, artifact_location=_artifact_location(name, tracking_uri),
                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
            )
        except MlflowException:
            # Another job of the same sweep may have created it a moment ago.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == LifecycleStage.DELETED:
        raise RuntimeError(
            f"experiment {name!r} (id {experiment.experiment_id}) is deleted; restore it with "
            f"`mlflow experiments restore --experiment-id {experiment.experiment_id}` "
            "or set tracking.experiment_name to another name"
        )
    if EXPERIMENT_KIND_TAG not in experiment.tags:  # made by an earlier version, or by hand
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def _artifact_location(name: str, tracking_uri: str) -> str | None:
    """Beside the database for local SQLite stores; the store's own default otherwise."""
    if not tracking_uri.startswith(_SQLITE_PREFIX):
        return None
    database = tracking_uri[len(_SQLITE_PREFIX) :].split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    return (Path(database).resolve().parent / _ARTIFACTS_FOLDER / key_segment(name)).as_uri()
