"""The comparison as a run of its own in MLflow, beside the runs it compares.

Tagged `fedtriage.comparison` so that no later comparison compares it; the compared
runs' ids are a tag; a comparison of one sweep joins that sweep's group in the UI. Its
note is the Markdown report, so the UI shows the table on the run's page.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Param
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NOTE
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from comparison.selection import COMPARISON_TAG, RunSelection
from comparison.store import one_line
from fedtriage.errors import FedtriageError
from fl_server.tracking.mlflow_writes import now_ms

COMPARED_RUNS_TAG = "fedtriage.compared_runs"
# Where the report's files go among the run's artifacts.
ARTIFACT_FOLDER = "comparison"


class ComparisonNotLogged(FedtriageError):
    """The report's files were written, but MLflow did not take the comparison run (exit 1)."""


@dataclass(frozen=True)
class LoggedComparison:
    run_id: str
    artifact_uri: str


def log_comparison(client: MlflowClient, experiment_id: str, selection: RunSelection, target: float,
                   compared: Sequence[str], files: Sequence[Path], note: str,
                   sweep_parent_id: str | None = None) -> LoggedComparison:
    """Create the comparison run, attach `files` under `comparison/`, close it FINISHED."""
    tags = {COMPARISON_TAG: "true", COMPARED_RUNS_TAG: ",".join(compared)[:MAX_TAG_VAL_LENGTH]}
    if len(note) <= MAX_TAG_VAL_LENGTH:
        tags[MLFLOW_RUN_NOTE] = note
    if sweep_parent_id is not None:
        tags[MLFLOW_PARENT_RUN_ID] = sweep_parent_id
    params = {
        "compare.experiment": selection.experiment,
        "compare.sweep": selection.sweep or "",
        "compare.tags": ",".join(f"{name}={value}" for name, value in selection.tags),
        "compare.target": f"{target:g}",
        "compare.runs": str(len(compared)),
    }
    try:
        run = client.create_run(experiment_id, start_time=now_ms(), tags=tags, run_name=_run_name(selection))
    except Exception as err:  # the store answered reads but refuses writes (read-only, permissions)
        raise ComparisonNotLogged(f"MLflow did not create the comparison run: {one_line(err)}") from err
    run_id = run.info.run_id
    try:
        client.log_batch(run_id, params=[Param(name, value[:MAX_PARAM_VAL_LENGTH]) for name, value in params.items()])
        for path in files:
            client.log_artifact(run_id, str(path), ARTIFACT_FOLDER)
    except Exception as err:
        client.set_terminated(run_id, "FAILED")
        raise ComparisonNotLogged(f"MLflow run {run_id} lacks the comparison's files: {one_line(err)}") from err
    client.set_terminated(run_id, "FINISHED", end_time=now_ms())
    return LoggedComparison(run_id, f"{run.info.artifact_uri}/{ARTIFACT_FOLDER}")


def _run_name(selection: RunSelection) -> str:
    if selection.sweep is not None:
        return f"compare-sweep-{selection.sweep}"
    if selection.tags:
        return "compare-" + "-".join(value for _, value in selection.tags)
    return f"compare-{selection.experiment}"
