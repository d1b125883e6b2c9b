"""`fedtriage provision`: real kits that Flower, Python's TLS and fedtriage's own loaders accept.

Every test provisions the demo federation of docker/federation.example.yaml (key generation
takes a fraction of a second) and checks the files themselves: modes, who holds which
private key, the certificate against its CA and in a real TLS handshake on loopback, the
SuperNode keys through Flower's own loading code, and what a re-run, add-unit and
rotate-unit keep, make and retire. Bad input is one line on stderr, exit 2, nothing lost.
"""

import argparse
import datetime
import ipaddress
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from cli.app import main
from fedtriage.environment import PHONE_HOME_SWITCHES
from fedtriage.errors import ConfigError
from fl_client.kit import load_node_kit
from fl_protocol.identity.keys import fingerprint as identity_fingerprint
from fl_protocol.identity.roster import Roster
from fl_protocol.provisioning import kits
from fl_protocol.provisioning.defaults import load_defaults
from fl_protocol.provisioning.federation_file import load_federation
from fl_protocol.provisioning.staging import KitsTransaction
from fl_protocol.provisioning.supernode_keys import fingerprint as supernode_fingerprint
from fl_server.kit import load_coordinator_kit
from tests.support.project import PROJECT_DIR

EXAMPLE = PROJECT_DIR / "docker" / "federation.example.yaml"
UNITS = ("unit1", "unit2", "unit3")
# Kit -> the private files it may hold: each party's own, nothing else.
PRIVATE_FILES = {
    "ca": {"ca.key"},
    "coordinator": {"identity.key", "server.key", "superexec-auth-secret"},
    **{unit: {"identity.key", "supernode.key"} for unit in UNITS},
}
PRIVATE_MARKERS = (b"PRIVATE KEY-----",)


def provision(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["provision", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The demo federation's kits, freshly provisioned."""
    kits_folder = tmp_path / "kits"
    code, _, err = provision(str(EXAMPLE), "--out", str(kits_folder), capsys=capsys)
    assert code == 0, err
    return kits_folder


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file's bytes (None for a folder) under `folder`, by relative path."""
    return {
        path.relative_to(folder).as_posix(): None if path.is_dir() else path.read_bytes()
        for path in sorted(folder.rglob("*"))
    }


def write_federation(tmp_path: Path, **changes: object) -> Path:
    document = yaml.safe_load(EXAMPLE.read_text())
    document.update(changes)
    path = tmp_path / "federation.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the kits themselves


def test_the_example_federation_file_describes_the_demo_federation() -> None:
    federation = load_federation(EXAMPLE, load_defaults())
    assert federation.name == "demo"
    assert [address.text for address in federation.coordinator.addresses] == ["127.0.0.1", "localhost"]
    assert federation.units == UNITS
    assert federation.coordinator.fleet_address == "127.0.0.1:8000"  # Flower 1.42's one SuperLink port


def test_first_provisioning_lays_out_every_kit_owner_only(out: Path) -> None:
    assert sorted(path.name for path in out.iterdir()) == ["ca", "coordinator", *UNITS]
    assert {path.name for path in (out / "coordinator").iterdir()} == {
        "ca.crt", "server.crt", "server.key", "superexec-auth-secret", "identity.key", "roster.json",
        "supernodes", "kit.yaml", "README.txt",
    }
    assert {path.name for path in (out / "coordinator" / "supernodes").iterdir()} == {f"{u}.pub" for u in UNITS}
    for unit in UNITS:
        assert {path.name for path in (out / unit).iterdir()} == {
            "ca.crt", "supernode.key", "supernode.key.pub", "identity.key", "roster.json", "state", "kit.yaml",
            "README.txt",
        }
        described = yaml.safe_load((out / unit / "kit.yaml").read_text())
        assert (described["federation"], described["unit"], described["fleet_address"]) == (
            "demo", unit, "127.0.0.1:8000"
        )
    assert {path.name for path in (out / "ca").iterdir()} == {"ca.key", "ca.crt", "README.txt"}
    folders = [out, *(path for path in out.rglob("*") if path.is_dir())]
    assert {str(folder): mode(folder) for folder in folders} == {str(folder): 0o700 for folder in folders}
    for kit, names in PRIVATE_FILES.items():
        for name in names:
            assert mode(out / kit / name) == 0o600, f"{kit}/{name}"
    assert not list(out.parent.glob(".kits.staging-*"))


def test_no_kit_holds_another_partys_private_key(out: Path) -> None:
    secrets_by_file = {
        f"{kit}/{name}": (out / kit / name).read_bytes() for kit, names in PRIVATE_FILES.items() for name in names
    }
    for path in (path for path in out.rglob("*") if path.is_file()):
        relative = path.relative_to(out).as_posix()
        content = path.read_bytes()
        if any(marker in content for marker in PRIVATE_MARKERS):
            kit, _, name = relative.partition("/")
            assert name in PRIVATE_FILES.get(kit, set()), f"{relative} holds private key material"
        for owner, secret in secrets_by_file.items():
            if owner != relative:
                assert secret.strip() not in content, f"{relative} holds {owner}"


def test_every_kit_has_a_readme_naming_its_secret_files(out: Path) -> None:
    for kit, names in PRIVATE_FILES.items():
        text = (out / kit / "README.txt").read_text()
        for name in names:
            assert name in text
        assert "SECRET" in text


def test_server_certificate_is_signed_by_the_ca_for_every_coordinator_address(out: Path) -> None:
    ca = x509.load_pem_x509_certificate((out / "ca" / "ca.crt").read_bytes())
    certificate = x509.load_pem_x509_certificate((out / "coordinator" / "server.crt").read_bytes())
    certificate.verify_directly_issued_by(ca)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    settings = load_defaults().certificates
    days = yaml.safe_load(EXAMPLE.read_text())["certificates"]["server_validity_days"]
    assert lifetime == datetime.timedelta(days=days, minutes=settings.backdate_minutes)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for kit in ("coordinator", *UNITS):
        assert (out / kit / "ca.crt").read_bytes() == (out / "ca" / "ca.crt").read_bytes()


def handshake(out: Path, client: ssl.SSLContext, hostname: str) -> bytes:
    """A TLS server on loopback with the coordinator's certificate and key; what `client` reads from it."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(out / "coordinator" / "server.crt", out / "coordinator" / "server.key")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            try:
                with server.wrap_socket(connection, server_side=True) as tls:
                    tls.sendall(b"fleet")
            except (ssl.SSLError, OSError):
                pass  # the client refused the certificate

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with client.wrap_socket(raw, server_hostname=hostname) as tls:
                    return tls.recv(5)
        finally:
            thread.join(timeout=10)


def flower_client_context(ca_file: Path) -> ssl.SSLContext:
    """As Flower 1.42's SuperNode builds it from --root-certificates (flwr/supercore/protobuf/client.py)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca_file.read_bytes().decode("ascii"))
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # what newer Pythons' default contexts check too
    return context


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_a_unit_completes_a_tls_handshake_with_the_coordinator_on_loopback(out: Path, hostname: str) -> None:
    assert handshake(out, flower_client_context(out / "unit1" / "ca.crt"), hostname) == b"fleet"


def test_a_client_trusting_another_ca_or_dialling_an_unnamed_host_refuses_the_coordinator(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other-kits"
    assert provision(str(EXAMPLE), "--out", str(other), capsys=capsys)[0] == 0
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(out, flower_client_context(other / "unit1" / "ca.crt"), "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(out, flower_client_context(out / "unit1" / "ca.crt"), "coordinator.example.org")


def test_flower_loads_the_supernode_keys_the_secret_and_the_tls_files(out: Path) -> None:
    from flwr.cli.supernode.register import try_load_public_key
    from flwr.common.args import try_obtain_root_certificates, try_obtain_server_certificates
    from flwr.supercore.auth.superexec_secret import load_superexec_auth_secret
    from flwr.supercore.primitives.asymmetric import public_key_to_bytes
    from flwr.supernode.cli.flower_supernode import _try_setup_client_authentication

    for unit in UNITS:
        # flower-supernode --auth-supernode-private-key
        loaded = _try_setup_client_authentication(
            argparse.Namespace(auth_supernode_private_key=str(out / unit / "supernode.key"),
                               auth_supernode_public_key=None)
        )
        assert loaded is not None
        private, public = loaded
        assert isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP384R1)
        # flwr supernode register <key>.pub: the coordinator's copy and the unit's own are that key
        for registered in (out / "coordinator" / "supernodes" / f"{unit}.pub", out / unit / "supernode.key.pub"):
            assert try_load_public_key(registered) == public_key_to_bytes(public)
        assert (out / unit / "supernode.key.pub").read_bytes().startswith(b"ecdsa-sha2-nistp384 ")
        # flower-supernode --root-certificates
        roots = try_obtain_root_certificates(
            argparse.Namespace(root_certificates=str(out / unit / "ca.crt"), insecure=False), "127.0.0.1:8000"
        )
        assert roots == (out / "ca" / "ca.crt").read_bytes()
    # flower-superlink --ssl-ca-certfile --ssl-certfile --ssl-keyfile
    coordinator = out / "coordinator"
    assert try_obtain_server_certificates(
        argparse.Namespace(ssl_ca_certfile=str(coordinator / "ca.crt"), ssl_certfile=str(coordinator / "server.crt"),
                           ssl_keyfile=str(coordinator / "server.key"))
    ) == tuple((coordinator / name).read_bytes() for name in ("ca.crt", "server.crt", "server.key"))
    # --superexec-auth-secret-file: exact bytes, 32 random bytes as hex
    secret = load_superexec_auth_secret(str(coordinator / "superexec-auth-secret"))
    assert secret is not None and len(secret) == 64 and bytes.fromhex(secret.decode())


def test_the_kits_load_as_fedtriages_nodes_and_coordinator_load_them(out: Path) -> None:
    coordinator = load_coordinator_kit(out / "coordinator")
    assert coordinator.roster.federation == "demo"
    assert sorted(coordinator.roster.nodes) == list(UNITS)
    for unit in UNITS:
        node = load_node_kit(out / unit)
        assert node.name == unit
        assert node.roster == coordinator.roster
        assert node.state_dir.is_dir()


# -- re-runs, new units, rotation


def test_rerunning_provision_keeps_every_existing_key(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(out)
    code, printed, _ = provision(str(EXAMPLE), "--out", str(out), capsys=capsys)
    assert code == 0
    assert snapshot(out) == before
    assert "nothing to make" in printed and "created" not in printed


def test_a_rerun_makes_only_the_missing_parts(out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(out)
    for missing in ("unit2/supernode.key.pub", "coordinator/ca.crt", "unit3/kit.yaml"):
        (out / missing).unlink()
    (out / "unit3" / "state").rmdir()
    code, printed, _ = provision(str(EXAMPLE), "--out", str(out), capsys=capsys)
    assert code == 0
    assert snapshot(out) == before
    assert "created  unit2/         supernode.key.pub" in printed
    assert "created  coordinator/   ca.crt" in printed


def test_a_new_coordinator_address_is_an_error_until_the_certificate_is_renewed(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    moved = write_federation(tmp_path, coordinator={"addresses": ["127.0.0.1", "localhost", "10.1.2.3",
                                                                  "coordinator.unit.example"]})
    before = snapshot(out)
    code, _, err = provision(str(moved), "--out", str(out), capsys=capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "coordinator.addresses" in err and "10.1.2.3" in err and "--renew-certificate" in err
    assert snapshot(out) == before

    code, printed, _ = provision(str(moved), "--out", str(out), "--renew-certificate", capsys=capsys)
    assert code == 0 and "renewed  coordinator/   server.crt" in printed
    certificate = x509.load_pem_x509_certificate((out / "coordinator" / "server.crt").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.1.2.3") in names.get_values_for_type(x509.IPAddress)
    assert "coordinator.unit.example" in names.get_values_for_type(x509.DNSName)
    after = snapshot(out)
    assert {path: data for path, data in after.items() if path.endswith(".key") or "secret" in path} == {
        path: data for path, data in before.items() if path.endswith(".key") or "secret" in path
    }
    (retired,) = (out / "coordinator" / "retired").iterdir()
    assert (retired / "server.crt").read_bytes() == before["coordinator/server.crt"]


def test_renewing_the_certificate_needs_the_ca_key_brought_back(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (out / "ca").rename(tmp_path / "offline-ca")
    assert provision(str(EXAMPLE), "--out", str(out), capsys=capsys)[0] == 0  # nothing to issue: no CA key needed
    before = snapshot(out)
    code, _, err = provision(str(EXAMPLE), "--out", str(out), "--renew-certificate", capsys=capsys)
    assert code == 2 and "ca.key" in err and len(err.strip().splitlines()) == 1
    assert snapshot(out) == before


def test_a_certificate_near_its_end_gets_a_note_and_an_expired_one_must_be_renewed(out: Path) -> None:
    federation = load_federation(EXAMPLE, load_defaults())
    ends = x509.load_pem_x509_certificate((out / "coordinator" / "server.crt").read_bytes()).not_valid_after_utc
    report = kits.provision(federation, out, now=ends - datetime.timedelta(days=3))
    assert any("expires on" in note for note in report.notes)
    with pytest.raises(ConfigError, match="expired"):
        kits.provision(federation, out, now=ends + datetime.timedelta(days=1))
    report = kits.provision(federation, out, renew_certificate=True, now=ends + datetime.timedelta(days=1))
    assert report.paths("renewed") == ["coordinator/server.crt"]


def test_add_unit_makes_its_kit_and_every_kit_pins_the_grown_roster(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(out)
    code, printed, _ = provision("add-unit", "unit4", "--out", str(out), capsys=capsys)
    assert code == 0
    roster = Roster.load(out / "coordinator" / "roster.json")
    assert sorted(roster.nodes) == [*UNITS, "unit4"]
    for kit in ("coordinator", *UNITS, "unit4"):
        assert Roster.load(out / kit / "roster.json") == roster
    assert roster.digest() in printed and "must pin the new" in printed
    assert all(fingerprint in printed for _, _, fingerprint in roster.fingerprints())
    assert load_node_kit(out / "unit4").name == "unit4"
    assert (out / "coordinator" / "supernodes" / "unit4.pub").read_bytes() == (
        out / "unit4" / "supernode.key.pub"
    ).read_bytes()
    assert "unit4" in yaml.safe_load((out / "coordinator" / "kit.yaml").read_text())["units"]
    after = snapshot(out)
    assert {path: data for path, data in after.items() if path in before and path.endswith(".key")} == {
        path: data for path, data in before.items() if path.endswith(".key")
    }


def test_a_unit_added_to_the_federation_file_gets_its_kit_and_every_roster_grows(
    out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(out)
    code, printed, _ = provision(str(write_federation(tmp_path, units=[*UNITS, "unit4"])), "--out", str(out),
                                 capsys=capsys)
    assert code == 0 and "must pin the new" in printed
    assert load_node_kit(out / "unit4").roster == load_coordinator_kit(out / "coordinator").roster
    assert all((out / path).read_bytes() == data for path, data in before.items() if path.endswith(".key"))


def test_rotate_unit_retires_the_old_keys_and_every_kit_pins_the_new_identity(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(out)
    old_identity = Roster.load(out / "coordinator" / "roster.json").nodes["unit2"]
    old_supernode = (out / "unit2" / "supernode.key.pub").read_bytes()
    code, printed, _ = provision("rotate-unit", "unit2", "--out", str(out), capsys=capsys)
    assert code == 0
    (retired,) = (out / "unit2" / "retired").iterdir()
    assert retired.name.endswith("Z") and mode(retired) == 0o700
    for name in ("identity.key", "supernode.key", "supernode.key.pub"):
        assert (retired / name).read_bytes() == before[f"unit2/{name}"]
        assert (out / "unit2" / name).read_bytes() != before[f"unit2/{name}"]
    assert mode(retired / "supernode.key") == 0o600
    roster = Roster.load(out / "coordinator" / "roster.json")
    assert roster.nodes["unit2"] != old_identity
    for kit in ("coordinator", *UNITS):
        assert Roster.load(out / kit / "roster.json") == roster
    assert load_node_kit(out / "unit2").name == "unit2"
    new_supernode = (out / "unit2" / "supernode.key.pub").read_bytes()
    assert (out / "coordinator" / "supernodes" / "unit2.pub").read_bytes() == new_supernode
    for fingerprint in (supernode_fingerprint(old_supernode), supernode_fingerprint(new_supernode),
                        identity_fingerprint(old_identity), identity_fingerprint(roster.nodes["unit2"])):
        assert fingerprint in printed
    assert "unregister" in printed
    for unchanged in ("unit1/identity.key", "unit1/supernode.key", "coordinator/identity.key", "ca/ca.key"):
        assert (out / unchanged).read_bytes() == before[unchanged]


def test_a_failure_before_commit_leaves_the_kits_as_they_were(out: Path) -> None:
    before = snapshot(out)
    with pytest.raises(RuntimeError):
        with KitsTransaction(out) as transaction:
            transaction.write("unit1/extra.key", b"half", private=True)
            transaction.write("unit9/identity.key", b"half", private=True)
            raise RuntimeError("the disk filled up")
    assert snapshot(out) == before
    assert not list(out.parent.glob(".kits.staging-*"))


# -- help and bad input


@pytest.mark.parametrize("args", [["--help"], ["add-unit", "--help"], ["rotate-unit", "--help"]])
def test_every_provision_command_has_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["provision", *args])
    assert exited.value.code == 0
    assert "--out" in capsys.readouterr().out


BAD_FEDERATIONS = [
    ("federation: [demo\n", "FEDERATION"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1]}\nunits: [unit1]\nunitz: [unit2]\n", "unitz"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1]}\n", "units"),
    ("coordinator: {addresses: [127.0.0.1]}\nunits: [unit1]\n", "federation"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1], port: 1}\nunits: [unit1]\n", "coordinator.port"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1]}\nunits: [Unit 1]\n", "units[0]"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1]}\nunits: [unit1, unit1]\n", "units[1]"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1]}\nunits: [coordinator]\n", "units[0]"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1]}\nunits: [unit1, ca]\n", "units[1]"),
    ("federation: demo\ncoordinator: {addresses: ['coord:8000']}\nunits: [unit1]\n", "coordinator.addresses[0]"),
    ("federation: demo\ncoordinator: {addresses: [localhost, 10.0.0.256]}\nunits: [unit1]\n",
     "coordinator.addresses[1]"),
    ("federation: demo\ncoordinator: {addresses: ['https://coord.example']}\nunits: [unit1]\n",
     "coordinator.addresses[0]"),
    ("federation: demo\ncoordinator: {addresses: [0.0.0.0]}\nunits: [unit1]\n", "coordinator.addresses[0]"),
    ("federation: demo\ncoordinator: {addresses: [under_score.example]}\nunits: [unit1]\n",
     "coordinator.addresses[0]"),
    ("federation: demo\ncoordinator: {addresses: []}\nunits: [unit1]\n", "coordinator.addresses"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1], fleet_port: 70000}\nunits: [unit1]\n",
     "coordinator.fleet_port"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1]}\nunits: [unit1]\n"
     "certificates: {server_validity_days: 0}\n", "certificates.server_validity_days"),
    ("federation: demo\ncoordinator: {addresses: [127.0.0.1]}\nunits: [unit1]\n"
     "certificates: {server_validity_days: 5000}\n", "certificates.server_validity_days"),
    ("- just\n- a list\n", "federation"),
]


def assert_one_line_naming(code: int, err: str, named: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fedtriage: error: {named}"), err


@pytest.mark.parametrize(("text", "named"), BAD_FEDERATIONS)
def test_a_bad_federation_file_is_one_line_naming_the_setting_and_writes_nothing(
    text: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    federation = tmp_path / "federation.yaml"
    federation.write_text(text)
    code, _, err = provision(str(federation), "--out", str(tmp_path / "kits"), capsys=capsys)
    assert_one_line_naming(code, err, named)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["federation.yaml"]


def test_a_missing_federation_file_or_out_option_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = provision(str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "kits"), capsys=capsys)
    assert_one_line_naming(code, err, "FEDERATION")
    assert "nope.yaml" in err
    code, _, err = provision(str(EXAMPLE), capsys=capsys)
    assert_one_line_naming(code, err, "arguments")
    assert "--out" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["add-unit", "unit2"], "NAME"),  # already a unit
        (["add-unit", "Unit 4"], "NAME"),
        (["add-unit", "coordinator"], "NAME"),
        (["rotate-unit", "unit9"], "NAME"),
        (["rotate-unit"], "arguments"),
    ],
)
def test_a_bad_unit_command_is_one_line_and_changes_nothing(
    args: list[str], named: str, out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(out)
    code, _, err = provision(*args, "--out", str(out), capsys=capsys)
    assert_one_line_naming(code, err, named)
    assert snapshot(out) == before


def test_unit_commands_need_provisioned_kits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = provision("add-unit", "unit4", "--out", str(tmp_path / "kits"), capsys=capsys)
    assert_one_line_naming(code, err, "--out")
    assert not (tmp_path / "kits").exists()


@pytest.mark.parametrize(
    ("changes", "named"),
    [({"federation": "other"}, "federation"), ({"units": ["unit1", "unit2"]}, "units")],
)
def test_a_federation_file_that_no_longer_fits_the_kits_is_one_line_and_changes_nothing(
    changes: dict[str, object], named: str, out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(out)
    code, _, err = provision(str(write_federation(tmp_path, **changes)), "--out", str(out), capsys=capsys)
    assert_one_line_naming(code, err, named)
    assert snapshot(out) == before


def test_kits_are_never_written_into_a_folder_of_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "documents").mkdir()
    (tmp_path / "documents" / "notes.txt").write_text("mine")
    code, _, err = provision(str(EXAMPLE), "--out", str(tmp_path / "documents"), capsys=capsys)
    assert_one_line_naming(code, err, "--out")
    assert [path.name for path in (tmp_path / "documents").iterdir()] == ["notes.txt"]
    code, _, err = provision(str(EXAMPLE), "--out", str(tmp_path / "documents" / "notes.txt"), capsys=capsys)
    assert_one_line_naming(code, err, "--out")
    assert (tmp_path / "documents" / "notes.txt").read_text() == "mine"


# -- a real SuperLink and SuperNodes on loopback


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_for(condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return False


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop the processes this test started, by their own ids."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_superlink_serves_the_kits_tls_and_admits_only_registered_supernodes(out: Path, tmp_path: Path) -> None:
    """flower-superlink with the coordinator kit (TLS, SuperNode auth, SuperExec secret); unit1 registered
    with `flwr supernode register` comes online over 127.0.0.1, unregistered unit2 (via localhost) is refused."""
    bin_dir = Path(sys.executable).parent
    port = free_port()
    flwr_home = tmp_path / "flwr-home"
    flwr_home.mkdir()
    coordinator = out / "coordinator"
    (flwr_home / "config.toml").write_text(
        f'[superlink]\ndefault = "demo"\n[superlink.demo]\naddress = "127.0.0.1:{port}"\n'
        f'root-certificates = "{coordinator / "ca.crt"}"\n'
    )
    env = {**os.environ, **PHONE_HOME_SWITCHES, "FLWR_HOME": str(flwr_home)}
    logs = {name: tmp_path / f"{name}.log" for name in ("superlink", "unit1", "unit2")}
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str, *command: str) -> None:
        with logs[name].open("wb") as log:
            processes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))

    def logged(name: str, text: str) -> bool:
        return text in logs[name].read_text(errors="replace")

    try:
        start(
            "superlink", str(bin_dir / "flower-superlink"), "--ssl-ca-certfile", str(coordinator / "ca.crt"),
            "--ssl-certfile", str(coordinator / "server.crt"), "--ssl-keyfile", str(coordinator / "server.key"),
            "--enable-supernode-auth", "--superexec-auth-secret-file", str(coordinator / "superexec-auth-secret"),
            "--isolation", "process", "--host", "127.0.0.1", "--port", str(port),
        )
        assert wait_for(lambda: listening(port), 60), logs["superlink"].read_text()
        registered = subprocess.run(
            [str(bin_dir / "flwr"), "supernode", "register", str(coordinator / "supernodes" / "unit1.pub"), "demo",
             "--name", "unit1"],
            env=env, capture_output=True, text=True, timeout=60,
        )
        assert registered.returncode == 0, registered.stdout + registered.stderr
        node_id = re.search(r"SuperNode (\d+) registered", registered.stdout)
        assert node_id is not None, registered.stdout
        for unit, host in (("unit1", "127.0.0.1"), ("unit2", "localhost")):
            start(
                unit, str(bin_dir / "flower-supernode"), "--superlink", f"{host}:{port}",
                "--root-certificates", str(out / unit / "ca.crt"),
                "--auth-supernode-private-key", str(out / unit / "supernode.key"),
                "--isolation", "process", "--port", str(free_port()), "--max-retries", "1",
            )
        activated = f"Activated node_id={node_id.group(1)}"
        assert wait_for(lambda: logged("superlink", activated), 60), logs["superlink"].read_text()
        assert wait_for(lambda: logged("superlink", "No SuperNode found with the given public key"), 60)
        assert wait_for(lambda: processes[-1].poll() is not None, 60)  # unit2 gave up
        for unit in ("unit1", "unit2"):  # unit2 was refused for its key, not for TLS
            assert not logged(unit, "CERTIFICATE_VERIFY_FAILED"), logs[unit].read_text()
    finally:
        stop(processes)
