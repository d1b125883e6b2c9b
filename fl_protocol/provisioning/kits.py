"""Laying out a federation's kits: provision from a federation file, add a unit, rotate a unit's keys.

`KITS/ca/` holds the CA's key (the provisioning authority's, kept offline), `KITS/coordinator/`
the coordinator's kit and `KITS/<unit>/` each unit's; no kit holds another party's private
key (`layout`, `readme`). A re-run never replaces a key: what exists is kept and checked
against the federation file, only what is missing is made, and every mismatch is one
`ConfigError` raised before anything under KITS changes (`staging.KitsTransaction`). Keys
that must go (a rotated unit's, a renewed certificate) move to `retired/<UTC time>/`.
"""

import dataclasses
import datetime
import os
import secrets
import stat
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_ssh_private_key

from fedtriage.errors import ConfigError
from fl_protocol.identity import kits as identity_kits
from fl_protocol.identity.keys import fingerprint as identity_fingerprint
from fl_protocol.identity.roster import Roster
from fl_protocol.provisioning import readme, tls
from fl_protocol.provisioning.defaults import load_defaults
from fl_protocol.provisioning.federation_file import Federation, check_unit_name
from fl_protocol.provisioning.kit_file import coordinator_kit_yaml, read_federation_of_kits, unit_kit_yaml
from fl_protocol.provisioning.layout import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    CA_KIT,
    KIT_FILE,
    README_FILE,
    RETIRED_DIR,
    SERVER_CERT_FILE,
    SERVER_KEY_FILE,
    SUPEREXEC_SECRET_FILE,
    SUPERNODE_KEY_FILE,
    SUPERNODE_PUBLIC_KEY_FILE,
    SUPERNODES_DIR,
    supernode_public_key_name,
)
from fl_protocol.provisioning.report import ProvisionReport, RotatedUnit
from fl_protocol.provisioning.staging import KitsTransaction
from fl_protocol.provisioning.supernode_keys import fingerprint as supernode_fingerprint
from fl_protocol.provisioning.supernode_keys import new_supernode_key, read_public_key

COORDINATOR = identity_kits.COORDINATOR_KIT
SUPEREXEC_SECRET_BYTES = 32


def provision(
    federation: Federation, out: Path, *, renew_certificate: bool = False, now: datetime.datetime | None = None
) -> ProvisionReport:
    """Kits in `out` for `federation`: made where missing, kept and checked where present."""
    return _Provisioning(federation, out, now).run(renew_certificate=renew_certificate)


def add_unit(out: Path, name: str, *, now: datetime.datetime | None = None) -> ProvisionReport:
    """A kit for new unit `name`, and the grown roster in every kit of the federation in `out`."""
    check_unit_name(name, "NAME")
    federation = read_federation_of_kits(out, load_defaults())
    if name in federation.units:
        raise ConfigError("NAME", f"unit {name!r} is already in federation {federation.name!r} ({out / name})")
    return _Provisioning(dataclasses.replace(federation, units=(*federation.units, name)), out, now).run()


def rotate_unit(out: Path, name: str, *, now: datetime.datetime | None = None) -> ProvisionReport:
    """New SuperNode and identity keys for unit `name`; the old ones retired, every roster updated."""
    check_unit_name(name, "NAME")
    federation = read_federation_of_kits(out, load_defaults())
    if name not in federation.units:
        raise ConfigError(
            "NAME", f"no unit {name!r} in federation {federation.name!r}; its units: {', '.join(federation.units)}"
        )
    return _Provisioning(federation, out, now).run(rotate=name)


class _Provisioning:
    """One command's pass over the kits: check what is there, stage what is missing, commit."""

    def __init__(self, federation: Federation, out: Path, now: datetime.datetime | None) -> None:
        self.federation = federation
        self.out = out
        self.now = now or datetime.datetime.now(datetime.UTC)
        self.stamp = self.now.strftime("%Y%m%dT%H%M%SZ")
        self._check_out_folder()
        self.previous = _roster_in(out / COORDINATOR)
        self._check_previous_roster()

    def run(self, *, renew_certificate: bool = False, rotate: str | None = None) -> ProvisionReport:
        try:
            return self._run(renew_certificate, rotate)
        except OSError as err:  # a folder that cannot be written, a full disk
            raise ConfigError("--out", f"cannot write {err.filename or self.out}: {err.strerror}") from err

    def _run(self, renew_certificate: bool, rotate: str | None) -> ProvisionReport:
        with KitsTransaction(self.out) as self.tx:
            self.report = ProvisionReport(self.out, self.federation.name, previous_roster=self.previous)
            ca = self._certificate_authority()
            coordinator_key = self._identity(COORDINATOR, None if self.previous is None else self.previous.server_key)
            self._server_certificate(ca, renew_certificate)
            self._superexec_secret()
            node_keys = {}
            for unit in self.federation.units:
                listed = None if self.previous is None else self.previous.node_key(unit)
                old_identity = listed if unit == rotate else None
                node_keys[unit] = self._identity(unit, listed, rotate=unit == rotate)
                old_supernode = self._supernode_key(unit, rotate=unit == rotate)
                if unit == rotate:
                    self.report.rotated = RotatedUnit(
                        unit,
                        old_supernode,
                        self.report.supernode_fingerprints[unit],
                        None if old_identity is None else identity_fingerprint(old_identity),
                        identity_fingerprint(node_keys[unit]),
                    )
            self.report.roster = identity_kits.federation_roster(self.federation.name, coordinator_key, node_keys)
            self._shared_files(ca.certificate)
            self.tx.commit()
        return self.report

    # -- checks before anything is made

    def _check_out_folder(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise ConfigError("--out", f"{self.out} is a file, not a folder of kits")
        if self.out.is_dir() and any(self.out.iterdir()) and not (self.out / COORDINATOR).is_dir():
            raise ConfigError(
                "--out", f"{self.out} is not empty and holds no coordinator kit: give a new or empty folder"
            )

    def _check_previous_roster(self) -> None:
        if self.previous is None:
            return
        if self.previous.federation != self.federation.name:
            raise ConfigError(
                "federation",
                f"{self.out} holds the kits of federation {self.previous.federation!r}, not "
                f"{self.federation.name!r}: give another --out",
            )
        dropped = sorted(set(self.previous.nodes) - set(self.federation.units))
        if dropped:
            raise ConfigError(
                "units",
                f"the roster in {self.out} also lists {', '.join(dropped)}, which the federation file does not: "
                "add them back (provisioning never removes a unit)",
            )

    # -- the CA and the coordinator's secrets

    def _certificate_authority(self) -> "_TrustedCA":
        copies = {
            rel: (self.out / rel).read_bytes()
            for rel in [f"{kit}/{CA_CERT_FILE}" for kit in (CA_KIT, COORDINATOR, *self.federation.units)]
            if (self.out / rel).is_file()
        }
        key_path = self.out / CA_KIT / CA_KEY_FILE
        key = tls.load_private_key(key_path) if key_path.exists() else None
        if len(set(copies.values())) > 1:
            raise ConfigError(
                "--out", f"the kits hold different CA certificates ({', '.join(copies)}): a federation has one CA"
            )
        if copies:
            certificate = tls.load_certificate(self.out / next(iter(copies)))
            if key is not None:
                if not tls.same_public_key(certificate, key):
                    raise ConfigError("--out", f"{key_path} is not the key of the kits' CA certificate")
                self._kept(f"{CA_KIT}/{CA_KEY_FILE}", private=True)
            if certificate.not_valid_after_utc - self.now < datetime.timedelta(
                days=self.federation.certificates.renew_before_days
            ):
                self.report.notes.append(
                    f"the CA certificate expires on {certificate.not_valid_after_utc:%Y-%m-%d}: after that every "
                    "unit needs a new kit"
                )
            return _TrustedCA(certificate, key)
        if key is not None:
            raise ConfigError(
                "--out", f"{key_path} has no CA certificate beside it or in any kit: restore ca.crt, or remove "
                f"{key_path.parent} to start a new CA",
            )
        ca = tls.new_ca(self.federation.name, self.federation.certificates, self.now)
        self._create(f"{CA_KIT}/{CA_KEY_FILE}", tls.private_key_pem(ca.key), private=True)
        return _TrustedCA(ca.certificate, ca.key)

    def _server_certificate(self, ca: "_TrustedCA", renew: bool) -> None:
        key_rel, cert_rel = f"{COORDINATOR}/{SERVER_KEY_FILE}", f"{COORDINATOR}/{SERVER_CERT_FILE}"
        key_path, cert_path = self.out / key_rel, self.out / cert_rel
        key = tls.load_private_key(key_path) if key_path.exists() else None
        certificate = tls.load_certificate(cert_path) if cert_path.exists() else None
        addresses = self.federation.coordinator.addresses
        if certificate is not None and not renew:
            if key is None:
                raise ConfigError(
                    "--out", f"{key_path} is missing beside {cert_path}: --renew-certificate makes a new key and "
                    "certificate",
                )
            problems = tls.certificate_problems(certificate, ca.certificate, key, addresses, self.now)
            if problems:
                named = set(tls.subject_alternative_names(certificate)) != {address.text for address in addresses}
                raise ConfigError(
                    "coordinator.addresses" if named else "--out",
                    f"the coordinator's certificate {cert_path} does not fit the federation: {'; '.join(problems)}. "
                    f"--renew-certificate re-issues it from the CA key {self.out / CA_KIT / CA_KEY_FILE}",
                )
            self._kept(key_rel, private=True)
            self._kept(cert_rel)
            ends = certificate.not_valid_after_utc
            if ends - self.now < datetime.timedelta(days=self.federation.certificates.renew_before_days):
                self.report.notes.append(
                    f"the coordinator's certificate expires on {ends:%Y-%m-%d}: renew it with --renew-certificate"
                )
            return
        if ca.key is None:
            raise ConfigError(
                "--out",
                f"issuing the coordinator's certificate needs the CA key {self.out / CA_KIT / CA_KEY_FILE}, which is "
                "not there: bring it back from where it is kept offline and run again",
            )
        if key is None:
            key = tls.new_private_key()
            self._create(key_rel, tls.private_key_pem(key), private=True)
        else:
            self._kept(key_rel, private=True)
        if certificate is not None:
            self._retire(cert_rel, COORDINATOR)
        issued = tls.issue_server_certificate(
            tls.CertificateAuthority(ca.key, ca.certificate), key, self.federation.name, addresses,
            self.federation.certificates, self.now,
        )
        self.tx.write(cert_rel, tls.certificate_pem(issued))
        self.report.add("renewed" if certificate is not None else "created", cert_rel)

    def _superexec_secret(self) -> None:
        rel = f"{COORDINATOR}/{SUPEREXEC_SECRET_FILE}"
        path = self.out / rel
        if path.exists():
            if path.stat().st_size == 0:
                raise ConfigError("--out", f"{path} is empty: remove it and run again to make a new secret")
            self._kept(rel, private=True)
            return
        # Flower reads the file as exact bytes: hex text, no newline, so that it can be typed too.
        self._create(rel, secrets.token_hex(SUPEREXEC_SECRET_BYTES).encode(), private=True)

    # -- each party's keys

    def _identity(self, kit: str, listed: bytes | None, *, rotate: bool = False) -> bytes:
        """The public identity key of `kit`: kept, or made; `listed` is what the roster says it is."""
        rel = f"{kit}/{identity_kits.IDENTITY_FILE}"
        path = self.out / rel
        if path.exists() and rotate:
            self._retire(rel, kit)
        elif path.exists():
            public = identity_kits.identity_public_key(path.parent)
            if listed is not None and listed != public:
                raise ConfigError("--out", f"{path} is not the identity key the roster lists for {kit}")
            self._kept(rel, private=True)
            return public
        elif listed is not None and not rotate:
            hint = "restore it" if kit == COORDINATOR else f"restore it, or `fedtriage provision rotate-unit {kit}`"
            raise ConfigError("--out", f"{path} is missing, but the roster lists {kit}'s identity key: {hint}")
        public = identity_kits.new_identity(self.tx.folder(kit))
        self.report.add("created", rel)
        return public

    def _supernode_key(self, unit: str, *, rotate: bool) -> str | None:
        """Make or keep `unit`'s SuperNode key pair and the coordinator's copy; the old fingerprint if rotated."""
        private_rel, public_rel = f"{unit}/{SUPERNODE_KEY_FILE}", f"{unit}/{SUPERNODE_PUBLIC_KEY_FILE}"
        copy_rel = f"{COORDINATOR}/{SUPERNODES_DIR}/{supernode_public_key_name(unit)}"
        private_path, public_path, copy_path = (self.out / rel for rel in (private_rel, public_rel, copy_rel))
        comment = f"{unit}@{self.federation.name}"
        old = None
        if rotate:
            old = _fingerprint_of_kit(private_path, public_path)
            for rel in (private_rel, public_rel):
                if (self.out / rel).exists():
                    self._retire(rel, unit)
            if copy_path.exists():
                self._retire(copy_rel, COORDINATOR, SUPERNODES_DIR)
        if private_path.exists() and not rotate:
            public = _public_line(private_path) + f" {comment}\n".encode()
            self._kept(private_rel, private=True)
            if public_path.exists():
                if _material(read_public_key(public_path)) != _material(public):
                    raise ConfigError("--out", f"{public_path} is not the public key of {private_path}")
                self._kept(public_rel)
            else:
                self._create(public_rel, public)
        elif (public_path.exists() or copy_path.exists()) and not rotate:
            raise ConfigError(
                "--out",
                f"{private_path} is missing, but its public key is there (and may be registered): restore it, or "
                f"`fedtriage provision rotate-unit {unit}`",
            )
        else:
            key = new_supernode_key(comment)
            self._create(private_rel, key.private_openssh, private=True)
            self._create(public_rel, key.public_openssh)
            public = key.public_openssh
        if copy_path.exists() and not rotate:
            if _material(read_public_key(copy_path)) != _material(public):
                raise ConfigError("--out", f"{copy_path} is not {unit}'s SuperNode key ({public_path})")
            self._kept(copy_rel)
        else:
            self._create(copy_rel, public)
        self.report.supernode_fingerprints[unit] = supernode_fingerprint(public)
        return old

    # -- what every kit holds

    def _shared_files(self, ca_certificate: x509.Certificate) -> None:
        ca_pem = tls.certificate_pem(ca_certificate)
        roster = self.report.roster
        assert roster is not None
        if (self.out / CA_KIT).exists() or f"{CA_KIT}/{CA_KEY_FILE}" in self.report.paths("created"):
            self._offer(f"{CA_KIT}/{CA_CERT_FILE}", ca_pem)
            self._offer(f"{CA_KIT}/{README_FILE}", readme.ca_readme(self.federation).encode())
        for kit in (COORDINATOR, *self.federation.units):
            self._offer(f"{kit}/{CA_CERT_FILE}", ca_pem)
            roster.save(self.tx.folder(kit) / identity_kits.ROSTER_FILE)
            self.report.add(self.tx.offer(f"{kit}/{identity_kits.ROSTER_FILE}"), f"{kit}/{identity_kits.ROSTER_FILE}")
        self._offer(f"{COORDINATOR}/{KIT_FILE}", coordinator_kit_yaml(self.federation))
        self._offer(f"{COORDINATOR}/{README_FILE}", readme.coordinator_readme(self.federation).encode())
        for unit in self.federation.units:
            state = f"{unit}/{identity_kits.STATE_DIR}"
            if not (self.out / state).is_dir():
                self.tx.folder(state)
                self.report.add("created", f"{state}/")
            self._offer(f"{unit}/{KIT_FILE}", unit_kit_yaml(self.federation, unit))
            self._offer(f"{unit}/{README_FILE}", readme.unit_readme(self.federation, unit).encode())

    # -- bookkeeping

    def _create(self, rel: str, data: bytes, *, private: bool = False) -> None:
        self.tx.write(rel, data, private=private)
        self.report.add("created", rel)

    def _offer(self, rel: str, data: bytes) -> None:
        """A file that is no key: created, kept when unchanged, else updated."""
        self.tx.write(rel, data)
        self.report.add(self.tx.offer(rel), rel)

    def _kept(self, rel: str, *, private: bool = False) -> None:
        self.report.add("kept", rel)
        mode = stat.S_IMODE(os.stat(self.out / rel).st_mode)
        if private and mode & 0o077:
            self.report.notes.append(f"{self.out / rel} is readable by others (mode {mode:o}): chmod 600 it")

    def _retire(self, rel: str, kit: str, inside: str = "") -> None:
        """Move `rel` into the kit's `retired/<UTC time>/` (a new folder per command), under `inside`."""
        stamp, count = self.stamp, 1
        while (self.out / kit / RETIRED_DIR / stamp).exists():
            count += 1
            stamp = f"{self.stamp}-{count}"
        into = f"{kit}/{RETIRED_DIR}/{stamp}" + (f"/{inside}" if inside else "")
        self.tx.retire(rel, into)
        self.report.add("retired", rel, f"{into}/{Path(rel).name}")


@dataclasses.dataclass(frozen=True)
class _TrustedCA:
    """The kits' CA as found: its certificate, and its key only where the authority brought it back."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | None


def _roster_in(kit: Path) -> Roster | None:
    path = kit / identity_kits.ROSTER_FILE
    return Roster.load(path) if path.exists() else None


def _public_line(private_path: Path) -> bytes:
    """`ecdsa-sha2-nistp384 AAAA...` of the OpenSSH private key in `private_path`."""
    try:
        key = load_ssh_private_key(private_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise ConfigError("--out", f"{private_path} is not an unencrypted OpenSSH private key") from err
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP384R1):
        raise ConfigError("--out", f"{private_path} is not an EC P-384 SuperNode key")
    return key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)


def _fingerprint_of_kit(private_path: Path, public_path: Path) -> str | None:
    if public_path.exists():
        return supernode_fingerprint(read_public_key(public_path))
    if private_path.exists():
        return supernode_fingerprint(_public_line(private_path))
    return None


def _material(public_openssh: bytes) -> bytes:
    """The key type and blob of an OpenSSH public key line, without its comment."""
    return b" ".join(public_openssh.split()[:2])
