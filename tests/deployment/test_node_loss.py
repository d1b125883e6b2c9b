"""A unit's node lost for good in the middle of a secagg run: the failure is counted once, under
that unit, and the run finishes with the other units.

Four units; their policy accepts a cohort of two others, the run needs three nodes per round.
unit4's machine dies (every process of its node killed at once, no goodbye to the SuperLink)
as round 2 begins.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli.deployment.supervisor import read_record
from experiments.loopback_federation import CLASSES_SETTING, FEDTRIAGE, loopback_federation
from fl_server.tracking.local_history import HISTORY_FILE, read_history

pytestmark = [pytest.mark.slow, pytest.mark.deployment]

UNITS = ("unit1", "unit2", "unit3", "unit4")


def _kill_node(state: Path) -> None:
    """SIGKILL every process the node's record names, with their process groups (its ClientApp workers)."""
    record = read_record(state)
    assert record is not None
    os.kill(record.supervisor_pid, signal.SIGKILL)
    for entry in record.processes:
        for kill in (os.killpg, os.kill):
            try:
                kill(entry.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_node_lost_mid_run_is_counted_once_and_the_run_finishes_with_the_others(tmp_path: Path) -> None:
    with loopback_federation(tmp_path, UNITS, min_peers=2) as federation:
        state = federation.kit("coordinator") / "state"
        run = subprocess.Popen(
            [FEDTRIAGE, "run", "start", "--kit", str(federation.kit("coordinator")), "secure=secagg",
             "federation.num_rounds=3", "federation.min_train_nodes=3", CLASSES_SETTING],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=federation.root)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not list(state.glob("runs/run-*/checkpoints/round_0001.pt")):
            time.sleep(0.1)
        _kill_node(federation.kit("unit4") / "state")
        stdout, stderr = run.communicate(timeout=600)

    assert run.returncode == 0, stdout + stderr
    assert "finished:completed" in stdout
    (output_dir,) = (path.parent for path in state.glob(f"runs/run-*/{HISTORY_FILE}"))
    history = [record for record in read_history(output_dir / HISTORY_FILE) if record.round > 0]
    assert [record.round for record in history] == [1, 2, 3]
    assert history[0].node_failures == {} and history[0].nodes_replied == 4
    # The round it died in: one failure, under its own name (not also under the SuperLink's node id).
    assert list(history[1].node_failures) == ["unit4"], history[1].node_failures
    assert history[1].nodes_replied == 3
    # Afterwards it is either known to be gone or counted again, once, under its name; the others go on.
    assert set(history[2].node_failures) <= {"unit4"}
    assert history[2].nodes_replied == 3
