"""`fedtriage simulate holdings=torchvision`: a public dataset's files on disk feed a simulated federation."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support.project import FEDTRIAGE
from tests.support.public_datasets import write_cifar10


def simulate(workdir: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_", "RAY_"))}
    return subprocess.run(
        [FEDTRIAGE, "simulate", "holdings=torchvision", *overrides],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600,
    )


def test_a_root_without_the_dataset_is_one_line_naming_the_files_and_exit_2(tmp_path: Path) -> None:
    completed = simulate(tmp_path, "holdings.root=datasets")
    assert completed.returncode == 2, completed.stderr
    assert completed.stderr.splitlines() == [
        f"fedtriage: error: holdings.root: {tmp_path / 'datasets'} does not exist: expected data_batch_1, "
        f"data_batch_2, data_batch_3, data_batch_4, data_batch_5 in {tmp_path / 'datasets' / 'cifar-10-batches-py'}, "
        "as torchvision lays them out; holdings.download=true fetches them there"
    ]
    assert not (tmp_path / "mlflow.db").exists()  # nothing was started


@pytest.mark.slow
def test_a_simulation_trains_on_a_tiny_cifar10_copy_and_records_its_classes(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "datasets", per_batch=12)
    completed = simulate(
        tmp_path, "holdings.root=datasets", "federation.num_rounds=2", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert f"CIFAR-10 {tmp_path / 'datasets'}: 60 images loaded, 0 skipped" in completed.stdout
    assert "node  airplane  automobile  bird  cat" in completed.stdout  # the partition, by class name

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "FINISHED" and summary["rounds_completed"] == 2
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.params["holdings.dataset"] == "cifar10"
    assert json.loads(run.data.params["holdings.classes"])[:3] == ["airplane", "automobile", "bird"]
    central = client.get_metric_history(run.info.run_id, "central/eval-accuracy")
    assert sorted(metric.step for metric in central) == [0, 1, 2]
    trained = client.get_metric_history(run.info.run_id, "round/nodes_replied")
    assert [metric.value for metric in sorted(trained, key=lambda metric: metric.step)][-2:] == [4, 4]
