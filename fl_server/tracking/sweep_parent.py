"""One parent run per Hydra multirun sweep, so the sweep's jobs show as one group in MLflow.

Jobs of a sweep may start concurrently (a parallel Hydra launcher). Each job looks the
parent up, creates one if there is none, and then settles on the oldest parent; a job
whose own parent lost that race deletes it. All jobs thus converge on the same parent.
"""

from mlflow import MlflowClient
from mlflow.entities import Run

from fedtriage.errors import ConfigError

# Tags the parent run of a sweep; its value is the sweep id.
SWEEP_PARENT_TAG = "fedtriage.sweep_parent"


def sweep_parent_run_id(client: MlflowClient, experiment_id: str, sweep_id: str) -> str:
    """The id of the parent run of `sweep_id`, created when the sweep has none yet."""
    parents = _parents(client, experiment_id, sweep_id)
    if parents:
        return parents[0].info.run_id
    created = client.create_run(
        experiment_id, run_name=f"sweep-{sweep_id}", tags={SWEEP_PARENT_TAG: sweep_id}
    )
    oldest = _parents(client, experiment_id, sweep_id)[0]
    if oldest.info.run_id != created.info.run_id:
        client.delete_run(created.info.run_id)
    return oldest.info.run_id


def _parents(client: MlflowClient, experiment_id: str, sweep_id: str) -> list[Run]:
    runs = client.search_runs(
        [experiment_id], filter_string=f"tags.`{SWEEP_PARENT_TAG}` = {_literal(sweep_id)}"
    )
    return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))


def _literal(text: str) -> str:
    """A string literal for MLflow's search syntax, which has no escape sequences."""
    for quote in ("'", '"'):
        if quote not in text:
            return f"{quote}{text}{quote}"
    raise ConfigError("tracking.sweep_id", f"cannot contain both kinds of quotes: {text!r}")
