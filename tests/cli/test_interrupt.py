"""Ctrl-C on a simulated federation: one press stops it within moments, keeps what was
recorded, and the command it prints resumes the run, linked to the run it continues."""

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support.project import FEDTRIAGE

pytestmark = pytest.mark.slow


def test_one_ctrl_c_stops_the_simulation_and_the_printed_command_resumes_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_", "RAY_"))}
    command = [FEDTRIAGE, "simulate", "federation.num_rounds=6", f"hydra.run.dir={tmp_path / 'run'}"]
    started = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert started.stdout is not None
    seen = []
    for line in started.stdout:  # wait until the federation is mid-run
        seen.append(line)
        if line.startswith("round 2/6"):
            break
    interrupted_at = time.monotonic()
    os.killpg(started.pid, signal.SIGINT)  # what Ctrl-C sends: the whole foreground group
    stdout, stderr = started.communicate(timeout=120)
    stop_seconds = time.monotonic() - interrupted_at

    assert started.returncode == 130, "".join(seen) + stdout + stderr
    assert stop_seconds < 30
    assert "Traceback" not in stderr and "ActorDiedError" not in stderr, stderr
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("fedtriage: interrupted: stopped after round ") and "resume with: " in last_line
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "INTERRUPTED" and summary["rounds_completed"] >= 2
    assert last_line.endswith(summary["resume_command"])
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    killed = client.get_run(summary["mlflow_run_id"])
    assert killed.info.status == "KILLED"
    recorded = client.get_metric_history(killed.info.run_id, "central/eval-accuracy")
    assert sorted(m.step for m in recorded) == list(range(0, summary["rounds_completed"] + 1))

    argv = shlex.split(summary["resume_command"])
    resumed = subprocess.run(
        [FEDTRIAGE, *argv[1:], f"hydra.run.dir={tmp_path / 'resumed'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming after round {summary['rounds_completed']}" in resumed.stdout
    continued = json.loads((tmp_path / "resumed" / "summary.json").read_text())
    assert continued["status"] == "FINISHED" and continued["rounds_completed"] == 6
    run = client.get_run(continued["mlflow_run_id"])
    assert run.data.tags["fedtriage.resumes_run"] == killed.info.run_id
    assert run.data.tags["fedtriage.resumed_after_round"] == str(summary["rounds_completed"])
