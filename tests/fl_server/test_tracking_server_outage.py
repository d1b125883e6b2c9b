"""MLflow down for a round then back: a whole federation loses no metric (issue 12).

A real `mlflow server` process (the coordinator's command line, SQLite store) records a
5-round federation of the real ServerApp and ClientApp (digits, cnn, 3 nodes, in-process
grid). The server is killed by its process id as round 2 starts and started again on the
same port, with the same store, as round 4 starts: rounds 2 and 3 are tracked while it is
down. The same federation, tracked into a plain SQLite store with no outage, is the
reference (same config and seed, same metrics): the outage run must hold exactly its
metrics, each step once, and every artifact.
"""

import logging
import signal
from pathlib import Path

import pytest
from flwr.app import Message
from mlflow import MlflowClient

from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings
from tests.support.inprocess_grid import federate_in_process
from tests.support.mlflow_server import MlflowServer

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolated_mlflow_env")]

ROUNDS = 5


def clocked(key: str) -> bool:
    """Metrics whose values depend on the clock, not on the training."""
    return "seconds" in key or key.startswith("protocol/")


def settings(tmp_path: Path, name: str, tracking_uri: str) -> RunSettings:
    return load_settings([
        "holdings=digits", "model=cnn", "secure=plaintext", "federation.num_nodes=3",
        f"federation.num_rounds={ROUNDS}", "federation.node_wait_timeout_s=1", f"output_dir={tmp_path / name}",
        f"tracking.tracking_uri={tracking_uri}", "tracking.experiment_name=outage", f"tracking.run_name={name}",
    ])


def metric_history(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of the run: name -> [(step, value)] in step order (duplicates kept)."""
    keys = client.get_run(run_id).data.metrics
    return {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in keys
    }


def test_mlflow_down_for_a_round_then_back_every_metric_present(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reference_uri = f"sqlite:///{tmp_path / 'reference.db'}"
    reference, _ = federate_in_process(settings(tmp_path, "reference", reference_uri))
    expected = metric_history(MlflowClient(reference_uri), str(reference.mlflow_run_id))

    server = MlflowServer(tmp_path / "server")
    outage: dict[str, int] = {}

    def mlflow_down_in_rounds_2_and_3(node_id: int, message: Message) -> bool:
        server_round = int(message.content["config"]["server-round"])
        if server_round == 2 and "stopped" not in outage:
            server.stop(signal.SIGKILL)
            outage["stopped"] = server_round
        if server_round == 4 and "restarted" not in outage:
            server.start()  # blocks the round until the server answers: same port, same store
            outage["restarted"] = server_round
        return False  # no message is dropped: this only times the outage

    try:
        server.start()
        with caplog.at_level(logging.INFO, logger="fedtriage.tracking"):
            summary, _ = federate_in_process(settings(tmp_path, "outage", server.url),
                                             drop=mlflow_down_in_rounds_2_and_3)
        client = MlflowClient(server.url)
        run = client.get_run(str(summary.mlflow_run_id))
        got = metric_history(client, run.info.run_id)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        checkpoints = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
        models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    finally:
        server.stop()

    assert outage == {"stopped": 2, "restarted": 4}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("does not answer" in m for m in messages) == 1
    assert sum("buffered records sent" in m for m in messages) == 1
    assert summary.status == "FINISHED" and summary.rounds_completed == ROUNDS
    assert summary.tracking_gaps is None
    assert not (tmp_path / "outage" / "tracking-buffer").exists()
    assert run.info.status == "FINISHED"

    assert got.keys() == expected.keys()
    for key, points in expected.items():
        assert [step for step, _ in got[key]] == [step for step, _ in points], key  # each step, once
        if not clocked(key):
            assert [value for _, value in got[key]] == pytest.approx([value for _, value in points]), key
    assert [step for step, _ in got["train/train-loss"]] == list(range(1, ROUNDS + 1))
    assert artifacts >= {"config", "holdings", "plots", "history.json", "checkpoints"}
    assert checkpoints == {f"checkpoints/round_{ROUNDS:04d}.pt"}
    assert [model.source_run_id for model in models] == [run.info.run_id]
