"""A real federation on loopback: `fedtriage coordinator start`, three `fedtriage node start`,
`fedtriage run start`, all as the commands a coordinator and units type.

One federation serves the module (starting it takes about 20 s): provisioned from a
federation file like the demo's, on free ports; the coordinator's SuperLink, SuperExec and
nginx; three units with their own generated holdings and a policy that accepts a cohort of
three (`experiments/loopback_federation.py`). Every process is stopped by its process id.
"""

import json
import re
import sqlite3
import ssl
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_disk

from cli.deployment.supervisor import is_running, read_record
from experiments.loopback_federation import CLASSES_SETTING, LoopbackFederation, free_port, loopback_federation
from fl_client.executor.approved_apps import bundle_hash
from fl_client.executor.audit_log import entries, verify
from tests.support.marker_app import write_marker_app

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

    for unit in federation.units:  # each node entered what it was asked and answered, and no more
        log = federation.kit(unit) / "state" / "audit.jsonl"
        assert verify(log).intact
        logged = list(entries(log))
        assert {entry["decision"] for entry in logged if entry["event"] == "instruction"} == {"accepted"}
        assert {"train", "query.secagg_unmask"} <= {entry["type"] for entry in logged}
        assert all(entry["bytes"] > 0 and len(entry["sha256"]) == 64 for entry in logged)
        assert str(federation.root / f"holdings-{unit}") not in log.read_text()


def test_an_app_no_unit_approved_runs_no_code_on_any_node(federation: LoopbackFederation, tmp_path: Path) -> None:
    marker, answers = tmp_path / "marker", tmp_path / "answers.json"
    app = write_marker_app(tmp_path / "app", marker)
    result = federation.fedtriage("run", "start", "--kit", str(federation.kit("coordinator")), "--app", str(app),
                                  f'out="{answers}"')
    assert result.returncode == 0, result.stdout + result.stderr  # the attacker's ServerApp itself ran
    assert json.loads(answers.read_text()) == ["refused: app-not-approved"] * len(federation.units)
    assert not marker.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sha256 = bundle_hash(build_fab_from_disk(app))
    for unit in federation.units:
        log = federation.kit(unit) / "state" / "audit.jsonl"
        assert verify(log).intact
        refused = [entry for entry in entries(log) if entry.get("app") == sha256]
        assert [(entry["decision"], entry["rule"]) for entry in refused] == [("refused", "app-not-approved")]
        # The secagg run before this one is done here: the node said its log's head, which the log still holds.
        said = (log.parent / "logs" / "executor.log").read_text()
        heads = re.findall(r"done here: audit log head ([0-9a-f]{64})", said)
        assert heads and verify(log, anchor=heads[0]).intact


def test_a_run_that_fails_makes_run_start_exit_non_zero_with_the_reason(federation: LoopbackFederation) -> None:
    result = federation.fedtriage("run", "start", "--kit", str(federation.kit("coordinator")), "secure=secagg",
                            "federation.num_rounds=2", "federation.min_train_nodes=3",
                            "holdings.classes=[disc,hexagon]")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "ended finished:failed" in result.stderr
    # Each node says why by rule only (the policy maps the federation's classes): no folder, no path, no name.
    assert "refused: policy class-not-mapped" in result.stderr
    assert "hexagon" not in result.stderr.replace("holdings.classes=[disc,hexagon]", "")
    assert str(federation.root) not in result.stderr


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
    assert (state / "tracking_uri").is_file()  # the state folder is kept for the next start
