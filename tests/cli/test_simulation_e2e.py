"""The main job end to end: `fedtriage simulate` in Flower's simulation engine.

One simulated federation runs once (under strace, to see every connection it
attempts); the tests below each check one promise about what it left behind.
"""

import ipaddress
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from tests.support.project import FEDTRIAGE
from triage.model_source import load_triage_model

pytestmark = pytest.mark.slow

ROUNDS = 3
EXPERIMENT = "e2e"


@dataclass
class FinishedRun:
    workdir: Path
    output_dir: Path
    completed: subprocess.CompletedProcess[str]
    syscall_trace: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.workdir / 'mlflow.db'}"


def simulate_env() -> dict[str, str]:
    """The user's environment, minus anything pointing MLflow or Flower elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_", "RAY_"))}
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def simulated_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    strace = shutil.which("strace")
    if strace is None:
        pytest.fail("strace is needed to watch the run's connections: apt-get install strace")
    workdir = tmp_path_factory.mktemp("simulate")
    trace = workdir / "syscalls.txt"
    output_dir = workdir / "run"
    command = [
        strace, "-f", "--seccomp-bpf", "-qq", "-e", "signal=none",
        "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(trace),
        FEDTRIAGE, "simulate",
        f"federation.num_rounds={ROUNDS}",
        f"tracking.experiment_name={EXPERIMENT}",
        f"hydra.run.dir={output_dir}",
    ]
    completed = subprocess.run(
        command, cwd=workdir, env=simulate_env(), capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return FinishedRun(workdir, output_dir, completed, trace)


def test_the_run_prints_a_line_per_round_and_a_final_table(simulated_run: FinishedRun) -> None:
    out = simulated_run.completed.stdout
    for round_ in range(1, ROUNDS + 1):
        assert f"round {round_}/{ROUNDS}  train loss" in out
        assert f"federated accuracy of the round-{round_} model" in out
    assert "round  train loss  fed. eval acc  central eval acc  seconds" in out
    assert "mlflow ui --backend-store-uri sqlite:///" in out


def test_mlflow_store_holds_the_run_its_params_and_one_metric_per_round(simulated_run: FinishedRun) -> None:
    client = MlflowClient(simulated_run.tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["federation.num_nodes"] == "4"
    assert run.data.params["strategy.name"] == "fedavg"
    assert run.data.tags["fedtriage.update_protection"] == "secagg"
    assert "fedtriage.plaintext_updates" not in run.data.tags
    train_steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/train-loss")]
    assert sorted(train_steps) == list(range(1, ROUNDS + 1))
    central_steps = [m.step for m in client.get_metric_history(run.info.run_id, "central/eval-accuracy")]
    assert sorted(central_steps) == list(range(0, ROUNDS + 1))
    survivors = [m.value for m in client.get_metric_history(run.info.run_id, "protocol/secagg-used")]
    assert survivors == [4.0] * ROUNDS
    federated_steps = [m.step for m in client.get_metric_history(run.info.run_id, "federated/eval-accuracy")]
    assert sorted(federated_steps) == list(range(0, ROUNDS + 1))  # every model, evaluated securely
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "config", "history.json"} <= artifacts
    assert "holdings" not in artifacts  # counts stay on the nodes under secure aggregation


def test_accuracy_rose_from_the_initial_model(simulated_run: FinishedRun) -> None:
    client = MlflowClient(simulated_run.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    accuracy = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "central/eval-accuracy")}
    assert accuracy[ROUNDS] > accuracy[0] + 0.3


def test_the_final_model_is_logged_with_the_run_and_not_registered(simulated_run: FinishedRun) -> None:
    client = MlflowClient(simulated_run.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    # As triage loads it: the weights-only model file with its spec, nothing unpickled.
    model = load_triage_model(f"runs:/{run.info.run_id}/model", None, simulated_run.tracking_uri)
    assert model.module(torch.zeros(2, 1, 8, 8)).shape == (2, 10) and len(model.spec.classes) == 10
    assert client.search_registered_models() == []  # registering is deliberate


def test_the_console_holds_fedtriage_lines_only(simulated_run: FinishedRun) -> None:
    errors = simulated_run.completed.stderr.splitlines()
    assert errors and all(line.startswith("fedtriage") for line in errors), "\n".join(errors)
    out = simulated_run.completed.stdout
    for noise in ("Warning", "[HYDRA]", "alembic", "INFO mlflow", "Manually terminating", "ClientAppActor"):
        assert noise not in out, noise


def test_checkpoints_and_summary_are_left_in_the_output_directory(simulated_run: FinishedRun) -> None:
    checkpoints = sorted(p.name for p in (simulated_run.output_dir / "checkpoints").iterdir())
    assert checkpoints == [f"round_{ROUNDS - 1:04d}.pt", f"round_{ROUNDS:04d}.pt"]  # keep_last: 2
    summary = json.loads((simulated_run.output_dir / "summary.json").read_text())
    assert summary["status"] == "FINISHED" and summary["rounds_completed"] == ROUNDS
    assert (simulated_run.output_dir / "final_model.pt").is_file()


def test_a_whole_simulated_run_attempts_no_connection_beyond_loopback(simulated_run: FinishedRun) -> None:
    trace = simulated_run.syscall_trace.read_text()
    assert "connect(" in trace, "strace saw no connection at all: the trace is not working"
    addresses = re.findall(r'inet_addr\("([^"]+)"\)', trace)
    addresses += re.findall(r'inet_pton\(AF_INET6, "([^"]+)"', trace)
    assert addresses, "no IP connection seen: Ray and MLflow use loopback, so the trace is incomplete"
    beyond_loopback = sorted({a for a in addresses if not _is_loopback_or_unspecified(a)})
    assert beyond_loopback == [], f"connections attempted beyond loopback: {beyond_loopback}"


def _is_loopback_or_unspecified(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def test_a_unit_registers_approves_and_triages_a_seized_folder_with_the_model(
    simulated_run: FinishedRun, tmp_path: Path
) -> None:
    """The commands a unit runs: register the run's model, approve it, rank a seized device with it."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    seized = tmp_path / "seized"
    (seized / "DCIM").mkdir(parents=True)
    truth: dict[str, int] = {}
    for index in range(len(digits.images) - 60, len(digits.images)):
        pixels = np.rint(digits.images[index] * (255 / 16)).clip(0, 255).astype(np.uint8)
        name = f"DCIM/IMG_{index:04d}.png"
        Image.fromarray(pixels, mode="L").save(seized / name)
        truth[name] = int(digits.target[index])
    (seized / "DCIM" / "IMG_9999.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    store = ["--tracking-uri", simulated_run.tracking_uri]
    for command in (["model", "register", "latest", "--experiment", EXPERIMENT, *store],
                    ["model", "approve", "fedtriage-model", "1", *store]):
        done = subprocess.run([FEDTRIAGE, *command], env=simulate_env(), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    out = tmp_path / "triage"
    completed = subprocess.run(
        [FEDTRIAGE, "classify", f"source={seized}", "model=models:/fedtriage-model@approved",
         f"tracking_uri={simulated_run.tracking_uri}", "relevant_classes=[7]", f"out={out}", "progress=false"],
        env=simulate_env(), capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "classified:        60" in completed.stdout and "unreadable:        1" in completed.stdout

    report = json.loads((out / "triage.json").read_text())
    assert (report["summary"]["model"], report["summary"]["model_version"]) == ("fedtriage-model", "1 (@approved)")
    ranked = [f for f in report["files"] if f["status"] == "classified"]
    sevens = [truth[f["relative_path"]] == 7 for f in ranked]
    top = sevens[: sum(sevens)]
    assert sum(top) >= 0.7 * len(top)  # the sevens come first
    assert [f["relative_path"] for f in report["files"] if f["status"] == "unreadable"] == ["DCIM/IMG_9999.png"]
