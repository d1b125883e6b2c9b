"""The same apps under the other ways users start them: a Hydra sweep, and `flwr run .`."""

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from fedtriage.environment import PHONE_HOME_SWITCHES
from tests.support.kits import SMALL_FEDERATION
from tests.support.project import FEDTRIAGE

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
            "strategy=fedavg,fedprox", "federation.num_nodes=2", "federation.num_rounds=1", *SMALL_FEDERATION,
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


def test_a_ckks_federation_runs_in_the_engine_with_a_key_made_in_the_node_kits(tmp_path: Path) -> None:
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
    kits = tmp_path / "run" / "kits"
    assert (kits / "coordinator" / "ckks-public.bin").is_file()
    assert not (kits / "coordinator" / "ckks-secret.bin").exists()
    assert all((kits / f"node-{index}" / "ckks-secret.bin").is_file() for index in range(4))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("fedtriage").experiment_id])
    assert run.data.tags["fedtriage.update_protection"] == "ckks"
    assert client.get_metric_history(run.info.run_id, "protocol/ckks-expansion")[-1].value > 1


def test_flwr_run_runs_the_same_apps_through_a_local_superlink_and_leaves_nothing_behind(tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    home = tmp_path / "home"
    completed = subprocess.run(
        [
            FEDTRIAGE, "flwr-run", "federation.num_nodes=3", "federation.num_rounds=2", f"output_dir={output_dir}",
            *SMALL_FEDERATION,
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}", "tracking.log_model=false",
        ],
        cwd=tmp_path, env=clean_env(HOME=str(home)), capture_output=True, text=True, timeout=400,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((output_dir / "summary.json").read_text())
    assert summary["status"] == "FINISHED" and summary["rounds_completed"] == 2
    assert summary["final_metrics"]["central/eval-accuracy"] > 0.3
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("fedtriage").experiment_id])
    assert run.data.params["federation.num_nodes"] == "3"
    assert "(3 simulated SuperNodes)" in completed.stdout  # the node count from federation.num_nodes alone
    assert "changed from 10 to 2" not in completed.stdout and "Received 1 results" not in completed.stdout
    assert not re.search(r"^\d\d/\d\d/\d{4} .*:INFO:", completed.stdout, re.MULTILINE)  # each line once
    assert (output_dir / "flwr-home" / "config.toml").is_file() and not (home / ".flwr").exists()
    assert _processes_naming(output_dir / "flwr-home") == []  # the local SuperLink and SuperExec are gone


def test_a_failed_flwr_run_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            FEDTRIAGE, "flwr-run", "federation.num_nodes=2", "federation.min_available_nodes=3", *SMALL_FEDERATION,
            "federation.node_wait_timeout_s=2", "federation.num_rounds=1", f"output_dir={tmp_path / 'out'}",
            "tracking.enabled=false",
        ],
        cwd=tmp_path, env=clean_env(HOME=str(tmp_path / "home")), capture_output=True, text=True, timeout=400,
    )
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert completed.stderr.strip().splitlines()[-1].startswith("fedtriage: federation failed: the run ended FAILED")
    assert "federation.min_available_nodes=3" in completed.stderr
    assert _processes_naming(tmp_path / "out" / "flwr-home") == []


def _processes_naming(path: Path) -> list[int]:
    found = subprocess.run(["pgrep", "-f", "--", str(path)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]
