"""The coordinator as seen from another host: a unit's node there takes part in runs, while the
SuperLink's Control and Runtime APIs stay out of its reach and a rogue key cannot be registered.

The other host is a network namespace on a veth pair (`tests/support/second_host.py`); the
coordinator's certificate names the pair's address, which every node connects to. unit1 and
unit2 run on this host, unit3 on the other one. Skipped, with the reason, where namespaces
cannot be made.
"""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.deployment.control import ControlConnection, register_supernode
from cli.deployment.supervisor import read_record
from experiments.loopback_federation import CLASSES_SETTING, LoopbackFederation, loopback_federation
from fl_protocol.provisioning.supernode_keys import new_supernode_key
from tests.support.second_host import SecondHost, second_host

pytestmark = [pytest.mark.slow, pytest.mark.deployment]

# What a stranger on the units' network tries, run there: each route's HTTP status, or the connection error.
_PROBE = r"""
import json, socket, ssl, sys, urllib.error, urllib.request
address, fleet_port, superlink_port, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
context = ssl.create_default_context(cafile=ca)
answers = {}
for method, path in [("POST", "/v1/control/list-runs"), ("POST", "/v1/control/create-node-cli"),
                     ("POST", "/v1/control/start-run"), ("POST", "/v1/runtime/list-apps-to-launch"),
                     ("POST", "/v1/runtime/pull-messages"), ("GET", "/docs"), ("POST", "/v1/fleet/get-run")]:
    request = urllib.request.Request(f"https://{address}:{fleet_port}{path}", method=method, data=b"")
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as reply:
            answers[path] = reply.status
    except urllib.error.HTTPError as err:
        answers[path] = err.code
try:
    socket.create_connection((address, superlink_port), timeout=10).close()
    answers["superlink"] = "open"
except OSError as err:
    answers["superlink"] = type(err).__name__
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def host() -> Iterator[SecondHost]:
    try:
        with second_host() as made:
            yield made
    except PermissionError as err:
        pytest.skip(f"no second host: {err}")


@pytest.fixture(scope="module")
def federation(host: SecondHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackFederation]:
    with loopback_federation(tmp_path_factory.mktemp("federation"), addresses=(host.address, "127.0.0.1"),
                             started_units=("unit1", "unit2")) as started:
        started.start_node("unit3", started.holdings("unit3", 12, seed=3), host=host.command())
        yield started


def _superlink_port(federation: LoopbackFederation) -> int:
    record = read_record(federation.kit("coordinator") / "state")
    assert record is not None
    superlink = next(entry for entry in record.processes if entry.name == "superlink")
    return int(superlink.command[superlink.command.index("--port") + 1])


def test_a_node_on_another_host_takes_part_in_a_secagg_run(federation: LoopbackFederation) -> None:
    result = federation.fedtriage("run", "start", "--kit", str(federation.kit("coordinator")), "secure=secagg",
                                  "federation.num_rounds=2", "federation.min_train_nodes=3", CLASSES_SETTING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finished:completed" in result.stdout
    assert "3/3 nodes" in result.stdout


def test_from_another_host_only_the_fleet_routes_answer(federation: LoopbackFederation, host: SecondHost) -> None:
    probe = subprocess.run(
        host.command(sys.executable, "-c", _PROBE, host.address, str(federation.fleet_port),
                     str(_superlink_port(federation)), str(federation.kit("unit3") / "ca.crt")),
        capture_output=True, text=True, timeout=120, check=True)
    answers = json.loads(probe.stdout)
    for path in ("/v1/control/list-runs", "/v1/control/create-node-cli", "/v1/control/start-run",
                 "/v1/runtime/list-apps-to-launch", "/v1/runtime/pull-messages", "/docs"):
        assert answers[path] in (403, 404), (path, answers)
    assert answers["/v1/fleet/get-run"] == 415  # reaches the SuperLink, which wants a protobuf body
    assert answers["superlink"] == "ConnectionRefusedError"  # loopback only: not on the pair's address


def test_a_rogue_key_cannot_be_registered_from_another_host(
    federation: LoopbackFederation, host: SecondHost, tmp_path: Path
) -> None:
    rogue = new_supernode_key("rogue")
    public_key = tmp_path / "rogue.pub"
    public_key.write_bytes(rogue.public_openssh)
    home = tmp_path / "flwr"
    home.mkdir()
    ca = federation.kit("unit3") / "ca.crt"
    # Flower's own CLI, pointed at the units' port (the proxy) and at the SuperLink's port on the pair's address.
    (home / "config.toml").write_text(
        '[superlink]\ndefault = "fleet"\n\n'
        f'[superlink.fleet]\naddress = "{host.address}:{federation.fleet_port}"\nroot-certificates = "{ca}"\n\n'
        f'[superlink.direct]\naddress = "{host.address}:{_superlink_port(federation)}"\n'
        f'root-certificates = "{ca}"\n', encoding="utf-8")
    flwr = str(Path(sys.executable).with_name("flwr"))
    # The proxy does not know the Control route; the SuperLink's port is closed to the pair.
    for connection, refusal in (("fleet", "'404 Not Found'"), ("direct", "Connection to the SuperLink is unavailable")):
        attempt = subprocess.run(
            host.command("env", f"FLWR_HOME={home}", flwr, "supernode", "register", str(public_key), connection),
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert attempt.returncode != 0, (connection, attempt.stdout, attempt.stderr)
        assert refusal in attempt.stdout + attempt.stderr, (connection, attempt.stdout, attempt.stderr)

    # The SuperLink never had the key: from the coordinator's host it registers as new.
    connection = ControlConnection(federation.kit("coordinator") / "state" / "flwr")
    assert register_supernode(connection, public_key) is True
