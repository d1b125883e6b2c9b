"""A real federation on loopback: `fedtriage coordinator start`, three `fedtriage node start`,
`fedtriage run start`, all as the commands a coordinator and units type.

One federation serves the module (starting it takes about 20 s): provisioned from a
federation file like the demo's, on free ports; the coordinator's SuperLink, SuperExec and
nginx; three units with their own generated holdings and a policy that accepts a cohort of
three (`experiments/loopback_federation.py`). Every process is stopped by its process id.
"""

import os
import sqlite3
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from cli.deployment.supervisor import is_running, read_record
from experiments.loopback_federation import CLASSES_SETTING, LoopbackFederation, free_port, loopback_federation

pytestmark = [pytest.mark.slow, pytest.mark.deployment]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackFederation]:
    with loopback_federation(tmp_path_factory.mktemp("federation")) as started:
        yield started


def test_a_secagg_run_submitted_with_run_start_finishes_exits_0_and_is_in_mlflow(
    federation: LoopbackFederation,
) -> None:
    result = federation.fedtriage("run", "start", "--kit", str(federation.kit("coordinator")), "secure=secagg",
                            "federation.num_rounds=2", "federation.min_train_nodes=3", CLASSES_SETTING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finished:completed" in result.stdout
    assert "3/3 nodes" in result.stdout
    store = federation.kit("coordinator") / "state" / "mlflow.db"
    with sqlite3.connect(store) as db:
        statuses = [status for (status,) in db.execute("SELECT status FROM runs")]
        rounds = db.execute("SELECT COUNT(DISTINCT step) FROM metrics WHERE key = 'train/train-loss'").fetchone()[0]
    assert statuses == ["FINISHED"]
    assert rounds == 2

    listed = federation.fedtriage("run", "list", "--kit", str(federation.kit("coordinator")))
    assert listed.returncode == 0, listed.stderr
    assert "finished:completed" in listed.stdout and "runs/run-" in listed.stdout


def test_a_run_that_fails_makes_run_start_exit_non_zero_with_the_reason(federation: LoopbackFederation) -> None:
    result = federation.fedtriage("run", "start", "--kit", str(federation.kit("coordinator")), "secure=secagg",
                            "federation.num_rounds=2", "federation.min_train_nodes=3",
                            "holdings.classes=[disc,hexagon]")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ended finished:failed" in result.stderr
    assert "hexagon" in result.stderr


def test_the_proxy_answers_fleet_routes_only(federation: LoopbackFederation) -> None:
    context = ssl.create_default_context(cafile=str(federation.kit("unit1") / "ca.crt"))

    def status(method: str, path: str) -> int:
        request = urllib.request.Request(f"https://127.0.0.1:{federation.fleet_port}{path}", method=method,
                                         data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as reply:
                return int(reply.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    # Control (list runs, register a node key) and Runtime routes, and Flower's docs: not there.
    assert status("POST", "/v1/control/list-runs") == 404
    assert status("POST", "/v1/control/create-node-cli") == 404
    assert status("POST", "/v1/runtime/list-apps-to-launch") == 404
    assert status("GET", "/docs") == 404
    # A Fleet route reaches the SuperLink (which refuses an empty body), but only by POST.
    assert status("POST", "/v1/fleet/get-run") == 415
    assert status("GET", "/v1/fleet/get-run") == 403
    # The SuperLink itself listens on loopback only.
    record = read_record(federation.kit("coordinator") / "state")
    assert record is not None
    superlink = next(entry for entry in record.processes if entry.name == "superlink")
    assert superlink.command[superlink.command.index("--host") + 1] == "127.0.0.1"


def test_status_names_every_process_and_a_node_whose_key_is_not_registered_is_refused(
    federation: LoopbackFederation,
) -> None:
    status = federation.fedtriage("coordinator", "status", "--kit", str(federation.kit("coordinator")))
    assert status.returncode == 0, status.stderr
    for name in ("superlink", "superexec", "proxy"):
        assert f"{name}: running" in status.stdout
    node = federation.fedtriage("node", "status", "--kit", str(federation.kit("unit1")))
    assert "supernode: running" in node.stdout and "executor: running" in node.stdout

    # A unit added after the coordinator started: its key is not registered until a restart.
    added = federation.fedtriage("provision", "add-unit", "unit4", "--out", str(federation.kits))
    assert added.returncode == 0, added.stderr
    holdings = federation.holdings("unit4", 2, seed=4)
    refused = federation.fedtriage("node", "start", "--kit", str(federation.kit("unit4")), "--holdings", str(holdings),
                             f"supernode.runtime_port={free_port()}", timeout=120)
    assert refused.returncode == 1
    assert "not registered" in refused.stderr
    assert read_record(federation.kit("unit4") / "state") is None  # nothing left running


def test_coordinator_stop_stops_every_process_it_started(federation: LoopbackFederation) -> None:
    state = federation.kit("coordinator") / "state"
    record = read_record(state)
    assert record is not None
    stopped = federation.fedtriage("coordinator", "stop", "--kit", str(federation.kit("coordinator")))
    assert stopped.returncode == 0, stopped.stderr
    assert not any(is_running(entry.pid, entry.started) for entry in record.processes)
    assert not is_running(record.supervisor_pid, record.supervisor_started)
    assert federation.fedtriage("coordinator", "status", "--kit", str(federation.kit("coordinator"))).returncode == 3
    assert os.path.exists(state / "superlink.db")  # the federation's state is kept for the next start
