"""The same apps under the other ways users start them: a Hydra sweep, and `flwr run .`."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from fedtriage.environment import PHONE_HOME_SWITCHES
from tests.support.project import FEDTRIAGE, PROJECT_DIR

pytestmark = pytest.mark.slow



def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_"))}
    env.update(PHONE_HOME_SWITCHES)
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_multirun_sweep_gives_one_grouped_mlflow_run_per_job(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            FEDTRIAGE, "simulate", "-m",
            "strategy=fedavg,fedprox", "federation.num_nodes=2", "federation.num_rounds=1",
            "tracking.log_model=false", "tracking.experiment_name=sweep",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sweep")
    runs = client.search_runs([experiment.experiment_id])
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(children) == 2 and len(parents) == 1
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parents[0].info.run_id}
    assert sorted(run.data.params["strategy.name"] for run in children) == ["fedavg", "fedprox"]
    assert all(run.info.status == "FINISHED" for run in children)


def test_a_ckks_federation_runs_in_the_engine_with_contexts_generated_for_it(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            FEDTRIAGE, "simulate", "secure=ckks", "federation.num_rounds=2",
            "tracking.log_model=false", f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "FINISHED" and summary["rounds_completed"] == 2
    assert (tmp_path / "run" / "ckks" / "server" / "public.bin").is_file()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("fedtriage").experiment_id])
    assert run.data.tags["fedtriage.update_protection"] == "ckks"
    assert client.get_metric_history(run.info.run_id, "protocol/ckks-expansion")[-1].value > 1


def test_flwr_run_runs_the_same_apps_through_a_local_superlink(tmp_path: Path) -> None:
    flwr_home = tmp_path / "flwr-home"
    output_dir = tmp_path / "out"
    overrides = " ".join(
        [
            "federation.num_nodes=2",
            "federation.num_rounds=2",
            f"output_dir={output_dir}",
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "tracking.log_model=false",
        ]
    )
    env = clean_env(
        FLWR_HOME=str(flwr_home),
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=str(free_port()),
    )
    flwr = Path(sys.executable).with_name("flwr")
    try:
        completed = subprocess.run(
            [
                str(flwr), "run", str(PROJECT_DIR),
                "--run-config", f'fedtriage-overrides="{overrides}"',
                "--federation-config", "num-supernodes=2 client-resources-num-cpus=1",
                "--stream",
            ],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400,
        )
    finally:
        _stop_local_superlink(flwr_home)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    # `flwr run` exits 0 for a failed run too: the summary tells.
    assert (output_dir / "summary.json").is_file(), completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["status"] == "FINISHED" and summary["rounds_completed"] == 2
    assert summary["final_metrics"]["central/eval-accuracy"] > 0.3
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("fedtriage").experiment_id])
    assert run.data.params["federation.num_nodes"] == "2"


def _stop_local_superlink(flwr_home: Path) -> None:
    """`flwr run` leaves its local SuperLink (and SuperExec) running: stop them by PID."""
    found = subprocess.run(["pgrep", "-f", "--", f"--database {flwr_home}"], capture_output=True, text=True)
    for pid in (int(line) for line in found.stdout.split()):
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for process in [pid, *map(int, children)]:
            try:
                os.kill(process, signal.SIGTERM)
            except ProcessLookupError:
                pass
    time.sleep(1)
