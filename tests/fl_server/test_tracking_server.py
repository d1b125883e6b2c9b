"""MlflowTracker against a real `mlflow server` process on loopback (slow: ~20 s to start one).

The server runs the coordinator's own command line (tests/support/mlflow_server.py).
"""

import logging
import shlex
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from fl_protocol.settings import RunSettings
from fl_server.round_record import RoundRecord
from fl_server.tracking import MlflowTracker, RunOutcome, read_history
from fl_server.tracking.flush import flush_tracking_buffer
from tests.support.mlflow_server import MlflowServer, mlflow_server

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolated_mlflow_env")]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server.url


def rounds(first: int, last: int) -> list[RoundRecord]:
    return [
        RoundRecord(
            round=r,
            train_metrics={"train-loss": 1.0 / r},
            federated_eval={"eval-accuracy": 0.2 * r},
            node_metrics={"node-0": {"train-loss": 1.0 / r}},
            nodes_replied=2,
        )
        for r in range(first, last + 1)
    ]


def test_a_tracking_server_records_the_run_and_registers_the_model(
    request: pytest.FixtureRequest, settings_for: Callable[..., RunSettings], server_url: str, tmp_path: Path
) -> None:
    settings = settings_for(
        f"tracking.tracking_uri={server_url}", f"tracking.registered_model_name=model-{request.node.name}",
        "tracking.register_model=true",
    )
    tracker = MlflowTracker(settings.tracking, tmp_path / "out")
    history = [RoundRecord(round=0, central_eval={"eval-accuracy": 0.1})] + rounds(1, 2)

    tracker.start(settings)
    for record in history:
        tracker.log_round(record)
    tracked = tracker.finish(RunOutcome("FINISHED", history, torch.nn.Linear(4, 2), None))

    client = MlflowClient(server_url)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["federation.num_nodes"] == str(settings.federation.num_nodes)
    assert [m.step for m in client.get_metric_history(tracked.run_id, "federated/eval-accuracy")] == [1, 2]
    assert {a.path for a in client.list_artifacts(tracked.run_id)} >= {"config", "plots", "history.json"}
    assert tracked.registered_model_version == "1"
    assert client.get_model_version(f"model-{request.node.name}", "1").run_id == tracked.run_id
    run_page = f"{server_url}/#/experiments/{run.info.experiment_id}/runs/{tracked.run_id}"
    assert shlex.split(tracked.ui_command) == ["python", "-m", "webbrowser", run_page]


def test_a_server_dying_mid_run_stops_nothing_and_gets_every_record_once_back_on_the_same_port(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RunSettings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    history = rounds(1, 4)
    server = MlflowServer(tmp_path / "server")
    try:
        server.start()
        settings = settings_for(
            f"tracking.tracking_uri={server.url}", f"tracking.registered_model_name=model-{request.node.name}"
        )
        tracker = MlflowTracker(settings.tracking, tmp_path / "out")
        tracker.start(settings)
        tracker.log_round(history[0])
        server.stop(signal.SIGKILL)

        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="fedtriage.tracking"):
            for record in history[1:3]:
                tracker.log_round(record)
            tracker.log_failed_round(history[3], "only 1 of 4 sampled nodes returned an update")
            tracked = tracker.finish(RunOutcome("FAILED", history, torch.nn.Linear(4, 2), None))
        assert time.monotonic() - started < 60

        messages = [r.getMessage() for r in caplog.records if r.name == "fedtriage.tracking"]
        # One warning for the outage, not one per round; then the closing line naming the buffer.
        assert len(messages) == 2 and "does not answer" in messages[0]
        assert "did not answer by the end of the run" in messages[1]
        assert read_history(tmp_path / "out" / "history.json") == history

        server.start()  # the same port, the same store
        flushed = flush_tracking_buffer(tmp_path / "out" / "tracking-buffer")

        assert flushed.waiting == 0 and flushed.run_id == tracked.run_id
        assert not (tmp_path / "out" / "tracking-buffer").exists()
        client = MlflowClient(server.url)
        run = client.get_run(tracked.run_id)
        assert run.info.status == "FAILED"
        assert sorted(m.step for m in client.get_metric_history(tracked.run_id, "train/train-loss")) == [1, 2, 3, 4]
        assert client.get_metric_history(tracked.run_id, "round-failed")[0].step == 4
        assert "only 1 of 4" in run.data.tags["fedtriage.failed_round.4"]
        assert {a.path for a in client.list_artifacts(tracked.run_id)} >= {"config", "plots", "history.json"}
    finally:
        server.stop()
