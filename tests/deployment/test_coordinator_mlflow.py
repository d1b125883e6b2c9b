"""The coordinator's MLflow: its settings, the tracking URI its runs get, and a real
`mlflow server` on a real PostgreSQL that the coordinator starts, restarts and records into.

The slow test runs `fedtriage coordinator start tracking.server=true` with a PostgreSQL
cluster of its own (tests/support/postgres.py; skipped when PostgreSQL is not installed),
tracks a run through it, kills the server by its process id and sees the coordinator start
it again. Every process is stopped by its process id.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from cli.app import main
from cli.deployment.coordinator_processes import CoordinatorPaths
from cli.deployment.mlflow_server import (
    MlflowServerPlan,
    mlflow_server_command,
    mlflow_server_spec,
    read_tracking_uri,
    tracking_uri,
    write_tracking_uri,
)
from cli.deployment.settings import coordinator_settings
from cli.deployment.supervisor import is_running, read_record
from experiments.loopback_federation import FEDTRIAGE, free_port, start_foreground, stop_foreground
from fl_server.round_record import RoundRecord
from fl_server.tracking import MlflowTracker, RunOutcome
from tests.support.mlflow_server import wait_healthy
from tests.support.postgres import postgres_cluster


@pytest.mark.parametrize(("setting", "key"), [
    ("tracking.uri=mlflow.example.org", "tracking.uri"),
    ("tracking.uri=sqlite:///relative.db", "tracking.uri"),
    ("tracking.backend_store_uri=postgresql://mlflow@db/mlflow", "tracking.backend_store_uri"),
    ("tracking.artifacts_destination=/srv/mlartifacts", "tracking.artifacts_destination"),
    ("tracking.port=70000", None),  # only checked with server=true: see below
])
def test_a_bad_tracking_setting_is_named_on_one_line_before_anything_starts(
    setting: str, key: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["coordinator", "start", "--kit", str(tmp_path / "kit"), "--state", str(tmp_path / "state"), setting]
    if key is None:
        argv.append("tracking.server=true")
        key = "tracking.port"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{key}:" in err, err
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(("overrides", "problem"), [
    (["tracking.server=true", "tracking.uri=http://mlflow:5000"], "not both"),
    (["tracking.server=true", "tracking.backend_store_uri=postgres://mlflow@db/mlflow"], "not one of the stores"),
    (["tracking.server=true", "tracking.workers=0"], "must be >= 1"),
    (["tracking.server=true", "tracking.host= "], "address"),
])
def test_server_settings_are_checked(overrides: list[str], problem: str) -> None:
    with pytest.raises(Exception, match=problem) as raised:
        coordinator_settings(overrides)
    assert type(raised.value).__name__ == "ConfigError" and str(raised.value).startswith("tracking.")


def test_runs_record_where_the_coordinator_says(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    embedded = f"sqlite:///{state / 'mlflow.db'}"
    assert CoordinatorPaths(tmp_path, state).mlflow_uri == embedded  # no coordinator started here yet
    assert tracking_uri(coordinator_settings().tracking, state) == embedded
    server = coordinator_settings(["tracking.server=true", "tracking.port=5111", "tracking.host=0.0.0.0"])
    assert tracking_uri(server.tracking, state) == "http://127.0.0.1:5111"
    elsewhere = coordinator_settings(["tracking.uri=http://mlflow:5000"])
    write_tracking_uri(state, tracking_uri(elsewhere.tracking, state))
    assert read_tracking_uri(state) == "http://mlflow:5000"
    assert CoordinatorPaths(tmp_path, state).mlflow_uri == "http://mlflow:5000"  # what `run start` passes on
    assert (state / "tracking_uri").stat().st_mode & 0o077 == 0


def test_the_server_command_line_is_one_function_for_host_and_image() -> None:
    plan = MlflowServerPlan("postgresql://mlflow:secret@db:5432/mlflow", "/mlartifacts", "0.0.0.0", 5000, 2,
                            ("mlflow:5000", "localhost:*"))
    assert mlflow_server_command(plan) == (
        "mlflow", "server", "--backend-store-uri", "postgresql://mlflow:secret@db:5432/mlflow",
        "--artifacts-destination", "/mlartifacts", "--host", "0.0.0.0", "--port", "5000", "--workers", "2",
        "--allowed-hosts", "mlflow:5000,localhost:*",
    )
    spec = mlflow_server_spec(plan, Path("/state"))
    assert spec.command[1:] == mlflow_server_command(plan)[1:] and spec.restart_after_s
    assert all("secret" not in message for _, message in spec.fatal_lines)


@pytest.mark.slow
@pytest.mark.deployment
def test_the_coordinator_runs_mlflow_on_postgresql_restarts_it_and_runs_record_there(
    tmp_path: Path, settings_for  # type: ignore[no-untyped-def]
) -> None:
    kits = provision(tmp_path)
    kit, state, port = kits / "coordinator", kits / "coordinator" / "state", free_port()
    with postgres_cluster() as store:
        coordinator = start_foreground(
            [FEDTRIAGE, "coordinator", "start", "--kit", str(kit), f"superlink.port={free_port()}",
             "tracking.server=true", f"tracking.port={port}", f"tracking.backend_store_uri={store}"],
            "ready", tmp_path, timeout=180)
        try:
            url = f"http://127.0.0.1:{port}"
            assert CoordinatorPaths(kit, state).mlflow_uri == url
            status = run_fedtriage("coordinator", "status", "--kit", str(kit))
            assert f"tracking: {url}" in status and "mlflow-server: running" in status

            run_id = track_a_run(settings_for, url, tmp_path / "out")
            assert rows(store, "SELECT status FROM runs WHERE run_uuid = %s", run_id) == [("FINISHED",)]
            assert rows(store, "SELECT DISTINCT step FROM metrics WHERE run_uuid = %s AND key = 'train/train-loss' "
                        "ORDER BY step", run_id) == [(1,), (2,)]

            first = server_process(state)
            os.kill(first.pid, signal.SIGKILL)  # the server dies; its uvicorn is left holding the port
            second = wait_for_restart(state, first.pid)
            wait_healthy(url, 120)
            assert coordinator.poll() is None  # the coordinator went on
            assert track_a_run(settings_for, url, tmp_path / "out2") != run_id
        finally:
            stop_foreground(coordinator)
        assert not is_running(second.pid, second.started)


def provision(root: Path) -> Path:
    federation = root / "federation.yaml"
    federation.write_text(yaml.safe_dump({"federation": "tracking", "units": ["unit1"],
                                          "coordinator": {"addresses": ["127.0.0.1"], "fleet_port": free_port()}}))
    assert main(["provision", str(federation), "--out", str(root / "kits")]) == 0
    return root / "kits"


def run_fedtriage(*args: str) -> str:
    result = subprocess.run([FEDTRIAGE, *args], capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def track_a_run(settings_for, url: str, output_dir: Path) -> str:  # type: ignore[no-untyped-def]
    settings = settings_for(f"tracking.tracking_uri={url}")
    tracker = MlflowTracker(settings.tracking, output_dir)
    history = [RoundRecord(round=r, train_metrics={"train-loss": 1.0 / r}) for r in (1, 2)]
    tracker.start(settings)
    for record in history:
        tracker.log_round(record)
    tracked = tracker.finish(RunOutcome("FINISHED", history, torch.nn.Linear(4, 2), None))
    assert tracked.gaps is None and tracked.run_id is not None
    return tracked.run_id


def rows(store: str, query: str, *params: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(store) as connection:
        return list(connection.execute(query, params).fetchall())


def server_process(state: Path):  # type: ignore[no-untyped-def]
    record = read_record(state)
    assert record is not None
    [entry] = [entry for entry in record.processes if entry.name == "mlflow-server"]
    return entry


def wait_for_restart(state: Path, old_pid: int, timeout_s: float = 60):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        entry = server_process(state)
        if entry.pid != old_pid and is_running(entry.pid, entry.started):
            return entry
        time.sleep(0.5)
    raise AssertionError(f"the coordinator did not start mlflow-server again within {timeout_s} s")

