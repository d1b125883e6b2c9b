"""A run whose coordinator dies mid-run: `fedtriage run start` says so and exits non-zero, the
coordinator comes back, `fedtriage run resume` continues from the latest checkpoint to the
same final model as an uninterrupted run with the same seed, and MLflow shows the
interrupted run FAILED, linked to the run that continued it."""

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import torch

from cli.deployment.run_records import all_records
from cli.deployment.supervisor import read_record
from experiments.loopback_federation import (
    CLASSES_SETTING,
    FEDTRIAGE,
    free_port,
    loopback_federation,
    start_foreground,
)
from fl_server.run_summary import read_summary
from fl_server.tracking.continuation import CONTINUED_BY_TAG

pytestmark = [pytest.mark.slow, pytest.mark.deployment]

SETTINGS = ("secure=secagg", "federation.num_rounds=3", "federation.min_train_nodes=3", CLASSES_SETTING)


def _output_dir(stdout: str) -> Path:
    return Path([line for line in stdout.splitlines() if line.startswith("outputs: ")][-1].removeprefix("outputs: "))


def _final_model(output_dir: Path) -> dict[str, torch.Tensor]:
    summary = read_summary(output_dir)
    assert summary.final_model_path is not None
    return torch.load(summary.final_model_path, weights_only=True)["model_state"]


def test_a_run_cut_short_by_its_coordinator_resumes_to_the_same_final_model(tmp_path: Path) -> None:
    with loopback_federation(tmp_path) as federation:
        coordinator_kit = str(federation.kit("coordinator"))
        state = federation.kit("coordinator") / "state"
        whole = federation.fedtriage("run", "start", "--kit", coordinator_kit, *SETTINGS)
        assert whole.returncode == 0, whole.stdout + whole.stderr

        cut = subprocess.Popen([FEDTRIAGE, "run", "start", "--kit", coordinator_kit, *SETTINGS],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=federation.root)
        whole_dir = _output_dir(whole.stdout)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not [
            found for found in state.glob("runs/run-*/checkpoints/round_0001.pt") if whole_dir not in found.parents
        ]:
            time.sleep(0.1)
        record = read_record(state)
        assert record is not None
        superlink = next(entry for entry in record.processes if entry.name == "superlink")
        os.kill(superlink.pid, signal.SIGKILL)
        stdout, stderr = cut.communicate(timeout=300)
        assert cut.returncode == 1, stdout + stderr
        assert "fedtriage run resume" in stderr

        # The coordinator noticed its SuperLink died and stopped the rest; it starts again on the same state.
        coordinator = federation.commands[0]
        assert coordinator.wait(timeout=60) == 1
        federation.commands[0] = start_foreground(
            [FEDTRIAGE, "coordinator", "start", "--kit", coordinator_kit, f"superlink.port={free_port()}"], "ready",
            federation.root)
        interrupted = [run_id for run_id, entry in all_records(state / "runs").items()
                       if entry.output_dir != str(whole_dir)]
        assert len(interrupted) == 1
        run_id = str(interrupted[0])
        stopped = federation.fedtriage("run", "stop", run_id, "--kit", coordinator_kit)
        resumed = federation.fedtriage("run", "resume", run_id, "--kit", coordinator_kit)
        assert resumed.returncode == 0, stopped.stdout + stopped.stderr + resumed.stdout + resumed.stderr
        assert "resuming after its round" in resumed.stdout
        # The restarted SuperLink keeps its state in memory: the run is listed from the coordinator's own records.
        listed = federation.fedtriage("run", "list", "--kit", coordinator_kit)
        assert any(line.startswith(run_id) and "before last start" in line for line in listed.stdout.splitlines())

        whole_model, resumed_model = _final_model(whole_dir), _final_model(_output_dir(resumed.stdout))
        assert whole_model.keys() == resumed_model.keys()
        for name, tensor in whole_model.items():
            assert torch.equal(tensor, resumed_model[name]), name

        with sqlite3.connect(state / "mlflow.db") as db:
            runs = dict(db.execute("SELECT run_uuid, status FROM runs"))
            links = dict(db.execute("SELECT run_uuid, value FROM tags WHERE key = ?", (CONTINUED_BY_TAG,)))
        assert sorted(runs.values()) == ["FAILED", "FINISHED", "FINISHED"]
        (failed,) = [run for run, status in runs.items() if status == "FAILED"]
        assert runs[links[failed]] == "FINISHED"
