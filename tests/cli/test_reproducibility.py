"""Same configuration and seed, same metrics: in Flower's simulation engine, and across a resume.

The default federation (4 nodes, secure aggregation) runs twice with the same command,
then once more resumed from the first run's round-1 checkpoint. Every metric MLflow
recorded (all but wall-clock times) and the final weights must match exactly, not
approximately: a researcher comparing two settings sees the settings, never the run.
(The in-process round tests check the same for the round loop alone, in milliseconds.)
"""

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from models import load_model_file
from tests.support.project import FEDTRIAGE

pytestmark = pytest.mark.slow

ROUNDS = 2


@dataclass
class Run:
    output_dir: Path
    summary: dict[str, object]


@dataclass
class Runs:
    tracking_uri: str
    first: Run
    again: Run
    resumed: Run


def simulate(workdir: Path, name: str, *overrides: str) -> Run:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_", "RAY_"))}
    output_dir = workdir / name
    completed = subprocess.run(
        [FEDTRIAGE, "simulate", f"federation.num_rounds={ROUNDS}", f"hydra.run.dir={output_dir}", *overrides],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return Run(output_dir, json.loads((output_dir / "summary.json").read_text()))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    workdir = tmp_path_factory.mktemp("reproducibility")
    first = simulate(workdir, "first")
    again = simulate(workdir, "again")
    checkpoint = first.output_dir / "checkpoints" / "round_0001.pt"
    resumed = simulate(workdir, "resumed", f"checkpoint.resume_from={checkpoint}")
    return Runs(f"sqlite:///{workdir / 'mlflow.db'}", first, again, resumed)


def recorded_metrics(tracking_uri: str, run: Run) -> dict[tuple[str, int], float]:
    """(metric, round) -> value of every metric the run logged, wall-clock times left out."""
    client = MlflowClient(tracking_uri)
    run_id = str(run.summary["mlflow_run_id"])
    values = {}
    for key in client.get_run(run_id).data.metrics:
        if "seconds" in key:
            continue
        for metric in client.get_metric_history(run_id, key):
            values[(key, metric.step)] = metric.value
    return values


def final_weights(run: Run) -> dict[str, torch.Tensor]:
    return load_model_file(Path(str(run.summary["final_model_path"])))[0].state_dict()


def test_the_same_config_and_seed_give_identical_metrics_in_simulation(runs: Runs) -> None:
    first = recorded_metrics(runs.tracking_uri, runs.first)
    assert {("central/eval-accuracy", round_) for round_ in range(ROUNDS + 1)} <= set(first)
    assert any(key.startswith("protocol/secagg") for key, _ in first)  # under secure aggregation, the default
    assert recorded_metrics(runs.tracking_uri, runs.again) == first
    again = final_weights(runs.again)
    assert all(torch.equal(tensor, again[name]) for name, tensor in final_weights(runs.first).items())


def test_a_resumed_run_records_exactly_the_metrics_of_the_rounds_it_continues(runs: Runs) -> None:
    assert runs.resumed.summary["status"] == "FINISHED" and runs.resumed.summary["rounds_completed"] == ROUNDS
    resumed = recorded_metrics(runs.tracking_uri, runs.resumed)
    assert ("central/eval-accuracy", ROUNDS) in resumed and ("train/train-loss", ROUNDS) in resumed
    first = recorded_metrics(runs.tracking_uri, runs.first)
    learned = {key: value for key, value in resumed.items() if "bytes" not in key[0]}
    assert learned == {key: first[key] for key in learned}
    # Traffic is the one difference: the resumed run's first round sets up secure aggregation's
    # keys again, as the first run's first round did, so it carries the bytes of that round.
    traffic = {key: value for key, value in resumed.items() if "bytes" in key[0]}
    assert traffic == {(name, ROUNDS): first[(name, 1)] for name, _ in traffic}

    continued = final_weights(runs.resumed)
    assert all(torch.equal(tensor, continued[name]) for name, tensor in final_weights(runs.first).items())
    history = json.loads((runs.resumed.output_dir / "history.json").read_text())
    first_history = json.loads((runs.first.output_dir / "history.json").read_text())
    metrics = ("train_metrics", "federated_eval", "central_eval")
    assert [[record[part] for part in metrics] for record in history] == [
        [record[part] for part in metrics] for record in first_history
    ]
