"""`fedtriage check --kit`: a usable kit passes; each way a kit is unusable is named with its fix."""

import datetime
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cli.app import main
from fl_protocol.provisioning.kit_check import KitCheckRequest, check_kit
from tests.support.project import PROJECT_DIR

EXAMPLE = PROJECT_DIR / "docker" / "federation.example.yaml"


def provisioned(out: Path) -> Path:
    assert main(["provision", str(EXAMPLE), "--out", str(out)]) == 0
    return out


@pytest.fixture
def kits(tmp_path: Path) -> Path:
    return provisioned(tmp_path / "kits")


@pytest.fixture
def coordinator(kits: Path) -> Iterator[int]:
    """A TLS server on loopback with the coordinator kit's certificate; its port is written into unit1's kit."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(kits / "coordinator" / "server.crt", kits / "coordinator" / "server.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    set_fleet_address(kits / "unit1", f"127.0.0.1:{port}")
    yield port
    stop.set()
    thread.join()
    listener.close()


def set_fleet_address(kit: Path, address: str) -> None:
    path = kit / "kit.yaml"
    document = yaml.safe_load(path.read_text())
    document["fleet_address"] = address
    path.write_text(yaml.safe_dump(document))


def problems(kit: Path, **request: object) -> dict[str, str]:
    return {f.check: f.problem for f in check_kit(KitCheckRequest(kit, **request)) if f.problem}  # type: ignore[arg-type]


def test_a_provisioned_unit_kit_reaching_its_coordinator_is_usable(
    kits: Path, coordinator: int, capsys: pytest.CaptureFixture[str]
) -> None:
    holdings = kits.parent / "holdings"
    for category in ("a", "b"):
        (holdings / category).mkdir(parents=True)
    assert main(["check", "--kit", str(kits / "unit1"), "--holdings", str(holdings)]) == 0
    assert "usable" in capsys.readouterr().out
    assert main(["check", "--kit", str(kits / "coordinator")]) == 0


def test_a_coordinator_not_listening_is_one_line_saying_to_start_it(
    kits: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    set_fleet_address(kits / "unit1", f"127.0.0.1:{port}")
    assert main(["check", "--kit", str(kits / "unit1"), "--timeout", "2"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("fedtriage: error: --kit: 1 problem(s)")
    assert "is the coordinator started" in error[0]


def test_another_federations_kit_does_not_verify_the_coordinator(kits: Path, coordinator: int) -> None:
    other = provisioned(kits.parent / "other")
    set_fleet_address(other / "unit1", f"127.0.0.1:{coordinator}")
    found = problems(other / "unit1", timeout_s=2.0)
    assert "does not verify against this kit's CA" in found[f"coordinator at 127.0.0.1:{coordinator}"]


def test_a_clock_behind_the_certificates_and_exposed_keys_are_named(kits: Path, coordinator: int) -> None:
    os.chmod(kits / "unit1" / "supernode.key", 0o644)
    behind = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    found = {f.check: f.problem for f in check_kit(KitCheckRequest(kits / "unit1", timeout_s=2.0), now=behind)
             if f.problem}
    assert "clock is behind" in found["CA certificate"]
    assert "chmod 600 supernode.key" in found["private files"]


def test_a_mismatched_supernode_key_a_foreign_roster_and_missing_holdings_are_named(
    kits: Path, coordinator: int
) -> None:
    foreign = provisioned(kits.parent / "x") / "unit1" / "roster.json"
    (kits / "unit1" / "supernode.key.pub").write_bytes((kits / "unit2" / "supernode.key.pub").read_bytes())
    (kits / "unit1" / "roster.json").write_bytes(foreign.read_bytes())
    found = problems(kits / "unit1", holdings=kits.parent / "nowhere", timeout_s=2.0)
    assert "does not match supernode.key.pub" in found["SuperNode key"]
    assert "is not this kit's identity key" in found["identity and roster"]
    assert "no such folder" in found["holdings"]


def test_a_folder_that_is_no_kit_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--kit", str(tmp_path)]) == 2
    assert "kit.yaml" in capsys.readouterr().err


def test_holdings_must_hold_the_categories_the_policy_maps_and_a_vics_case_must_be_mapped(
    kits: Path, coordinator: int
) -> None:
    holdings = kits.parent / "holdings"
    for category in ("cat_a", "cat_b"):
        (holdings / category).mkdir(parents=True)
    policy = kits.parent / "policy.yaml"
    policy.write_text(yaml.safe_dump({"holdings": {"categories": {"a": ["cat_a"], "b": ["cat_b", "cat_c"]}}}))
    found = problems(kits / "unit1", holdings=holdings, policy=policy, timeout_s=2.0)
    assert "no category folder cat_c" in found["holdings"]
    (holdings / "cat_c").mkdir()
    assert "holdings" not in problems(kits / "unit1", holdings=holdings, policy=policy, timeout_s=2.0)
    case = holdings / "case.json"
    case.write_text("{}")
    assert "map the federation's classes to its Category numbers" in problems(
        kits / "unit1", holdings=case, timeout_s=2.0)["holdings"]
    assert "must give Category numbers" in problems(kits / "unit1", holdings=case, policy=policy,
                                                    timeout_s=2.0)["holdings"]
    policy.write_text(yaml.safe_dump({"holdings": {"categories": {"a": [1], "b": [2, 3]}}}))
    assert "holdings" not in problems(kits / "unit1", holdings=case, policy=policy, timeout_s=2.0)
