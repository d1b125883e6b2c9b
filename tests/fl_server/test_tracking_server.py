"""MlflowTracker against a real `mlflow server` process on loopback (slow: ~20 s to start one)."""

import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from fl_protocol.settings import RunSettings
from fl_server.round_record import RoundRecord
from fl_server.tracking import MlflowTracker, RunOutcome, read_history

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("isolated_mlflow_env")]

SERVER_START_TIMEOUT_S = 120.0


@contextmanager
def mlflow_server(folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `mlflow server` on a free loopback port; always stop its whole process group."""
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--default-artifact-root", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # The server's background job runner is not needed and slows start-up.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(folder / "server.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            _wait_until_healthy(url, process, folder / "server.log")
            yield url, process
        finally:
            stop_server(process)


def stop_server(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal the server's own process group (uvicorn workers included) and reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        except ProcessLookupError:
            pass
    try:  # workers outliving a hard-killed parent
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {SERVER_START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as (url, _):
        yield url




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


def test_a_server_dying_mid_run_does_not_stop_the_run(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RunSettings],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    history = rounds(1, 4)
    with mlflow_server(tmp_path / "server") as (url, process):
        settings = settings_for(
            f"tracking.tracking_uri={url}", f"tracking.registered_model_name=model-{request.node.name}"
        )
        tracker = MlflowTracker(settings.tracking, tmp_path / "out")
        tracker.start(settings)
        tracker.log_round(history[0])
        stop_server(process, signal.SIGKILL)

        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="fedtriage.tracking"):
            for record in history[1:3]:
                tracker.log_round(record)
            tracker.log_failed_round(history[3], "only 1 of 4 sampled nodes returned an update")
            tracked = tracker.finish(RunOutcome("FAILED", history, torch.nn.Linear(4, 2), None))

    assert time.monotonic() - started < 60
    assert tracked.run_id is not None
    messages = [r.getMessage() for r in caplog.records if r.name == "fedtriage.tracking"]
    # One warning per kind of failure, not one per round; then a closing summary.
    assert sum("could not log round metrics" in m for m in messages) == 1
    assert len(messages) == len(set(messages))
    assert "incomplete" in messages[-1] and "log round metrics: 2" in messages[-1]
    assert read_history(tmp_path / "out" / "history.json") == history
