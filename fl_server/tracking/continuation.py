"""A run resumed on a real federation: the interrupted run and the one that continues it.

The interrupted run's ServerApp died with its coordinator (or was stopped), so nothing
closed its MLflow run: it would stay RUNNING forever. `fedtriage run resume` closes it as
FAILED, says why, and once the continuation exists links the two both ways (the
continuation already carries `fedtriage.resumes_run`).
"""

from dataclasses import dataclass
from pathlib import Path

from fedtriage.errors import ConfigError
from fl_server.checkpoint import load_checkpoint
from fl_server.tracking.mlflow_tracker import RESUMES_RUN_TAG

INTERRUPTED_TAG = "fedtriage.interrupted"
CONTINUED_BY_TAG = "fedtriage.continued_by"


@dataclass(frozen=True)
class InterruptedRun:
    checkpoint: Path
    round: int
    tracked_run_id: str | None


def interrupted_checkpoint(output_dir: Path) -> InterruptedRun:
    """The newest checkpoint an interrupted run left in its output folder."""
    files = sorted((output_dir / "checkpoints").glob("round_*.pt"))
    if not files:
        raise ConfigError("RUN_ID", f"the run left no checkpoint in {output_dir / 'checkpoints'}: it ended before its "
                          "first round did; start it again")
    checkpoint = load_checkpoint(files[-1])
    return InterruptedRun(files[-1], checkpoint.round, checkpoint.tracked_run_id)


def mark_interrupted(run: InterruptedRun, tracking_uri: str, reason: str) -> str | None:
    """Close the interrupted run's MLflow run as FAILED (if it is still open); its id, if it has one."""
    if run.tracked_run_id is None:
        return None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    client.set_tag(run.tracked_run_id, INTERRUPTED_TAG, f"{reason}; resumed after round {run.round}")
    if client.get_run(run.tracked_run_id).info.status == "RUNNING":
        client.set_terminated(run.tracked_run_id, status="FAILED")
    return run.tracked_run_id


def link_continuation(tracking_uri: str, interrupted_run_id: str) -> str | None:
    """Tag the interrupted run with the MLflow run that resumed it; that run's id, if found."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_run(interrupted_run_id).info.experiment_id
    found = client.search_runs(
        [experiment], filter_string=f"tags.`{RESUMES_RUN_TAG}` = '{interrupted_run_id}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not found:
        return None
    client.set_tag(interrupted_run_id, CONTINUED_BY_TAG, found[0].info.run_id)
    return found[0].info.run_id
