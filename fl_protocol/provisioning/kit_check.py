"""Whether a kit is usable before anything runs: files, modes, keys, certificate dates, clock,
the roster, the unit's policy and holdings, and the coordinator's address.

Each check gives one `Finding`: fine, or what is wrong and what to do about it. A unit's
kit is also checked against the coordinator it will connect to: a TLS handshake with the
kit's CA as the only root and the certificate's name checked, as Flower's SuperNode does,
so a wrong CA, a wrong address, a clock outside the certificate's dates or a closed port
each say so here instead of in a SuperNode's retries.
"""

import datetime
import socket
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_ssh_private_key

from fedtriage.errors import ConfigError
from fl_protocol.identity.keys import IdentityKey
from fl_protocol.identity.kits import IDENTITY_FILE, POLICY_FILE, ROSTER_FILE, STATE_DIR
from fl_protocol.identity.roster import Roster
from fl_protocol.provisioning import tls
from fl_protocol.provisioning.defaults import load_defaults
from fl_protocol.provisioning.federation_file import parse_address
from fl_protocol.provisioning.layout import (
    CA_CERT_FILE,
    KIT_FILE,
    SERVER_CERT_FILE,
    SERVER_KEY_FILE,
    SUPEREXEC_SECRET_FILE,
    SUPERNODE_KEY_FILE,
    SUPERNODE_PUBLIC_KEY_FILE,
    SUPERNODES_DIR,
    supernode_public_key_name,
)
from fl_protocol.provisioning.supernode_keys import CURVE, read_public_key
from fl_protocol.settings.policy import load_node_policy


@dataclass(frozen=True)
class Finding:
    """One check: `problem` None when it holds; else what is wrong and what to do."""

    check: str
    detail: str
    problem: str | None = None


@dataclass(frozen=True)
class KitCheckRequest:
    kit: Path
    holdings: Path | None = None
    policy: Path | None = None
    timeout_s: float = 5.0


def check_kit(request: KitCheckRequest, now: datetime.datetime | None = None) -> list[Finding]:
    """Every finding about the kit in `request.kit` (a unit's or the coordinator's)."""
    now = now or datetime.datetime.now(datetime.UTC)
    kit = request.kit
    description = _kit_description(kit)
    if isinstance(description, Finding):
        return [description]
    if description.get("kit") == "coordinator":
        return _coordinator_findings(kit, description, now)
    return _unit_findings(kit, description, request, now)


def refuse_problems(findings: list[Finding], kit: Path) -> None:
    """Before starting anything: every problem found, in one `ConfigError`."""
    problems = [finding for finding in findings if finding.problem is not None]
    if problems:
        raise ConfigError("--kit", f"{len(problems)} problem(s) in {kit} (`fedtriage check --kit {kit}` lists them): "
                          + "; ".join(f"{finding.check}: {finding.problem}" for finding in problems))


def _kit_description(kit: Path) -> dict[str, Any] | Finding:
    path = kit / KIT_FILE
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        return Finding("kit", str(kit), f"cannot read {path} ({str(err).splitlines()[0]}): give the folder "
                       "`fedtriage provision` made for this party")
    if not isinstance(document, dict) or document.get("kit") not in ("unit", "coordinator"):
        return Finding("kit", str(kit), f"{path} is not a kit description written by `fedtriage provision`")
    return document


def _unit_findings(kit: Path, description: dict[str, Any], request: KitCheckRequest,
                   now: datetime.datetime) -> list[Finding]:
    unit = str(description.get("unit"))
    findings = [Finding("kit", f"unit {unit} of federation {description.get('federation')!r} in {kit}")]
    findings += _files(kit, [CA_CERT_FILE, SUPERNODE_KEY_FILE, SUPERNODE_PUBLIC_KEY_FILE, IDENTITY_FILE,
                             ROSTER_FILE, STATE_DIR], private=[SUPERNODE_KEY_FILE, IDENTITY_FILE])
    findings.append(_certificate_dates("CA certificate", kit / CA_CERT_FILE, now))
    findings.append(_supernode_key(kit))
    findings.append(_roster_entry(kit, description, unit))
    findings.append(_policy(request.policy or kit / POLICY_FILE))
    if request.holdings is not None:
        findings.append(_holdings(request.holdings, request.policy or kit / POLICY_FILE))
    findings.append(_coordinator_reachable(kit / CA_CERT_FILE, str(description.get("fleet_address")),
                                           request.timeout_s))
    return findings


def _coordinator_findings(kit: Path, description: dict[str, Any], now: datetime.datetime) -> list[Finding]:
    units = [str(unit) for unit in description.get("units") or []]
    findings = [Finding("kit", f"coordinator of federation {description.get('federation')!r} in {kit}")]
    findings += _files(
        kit,
        [CA_CERT_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE, SUPEREXEC_SECRET_FILE, IDENTITY_FILE, ROSTER_FILE,
         *(f"{SUPERNODES_DIR}/{supernode_public_key_name(unit)}" for unit in units)],
        private=[SERVER_KEY_FILE, SUPEREXEC_SECRET_FILE, IDENTITY_FILE],
    )
    findings.append(_certificate_dates("CA certificate", kit / CA_CERT_FILE, now))
    findings.append(_server_certificate(kit, description, now))
    findings.append(_roster_entry(kit, description, None))
    for unit in units:
        path = kit / SUPERNODES_DIR / supernode_public_key_name(unit)
        try:
            read_public_key(path)
        except ConfigError as err:
            findings.append(Finding(f"SuperNode key of {unit}", str(path), f"{err.problem}: run "
                                    f"`fedtriage provision rotate-unit {unit}` and ship it the new kit"))
    return findings


def _files(kit: Path, names: list[str], private: list[str]) -> list[Finding]:
    missing = [name for name in names if not (kit / name).exists()]
    exposed = [name for name in private if (kit / name).is_file()
               and (kit / name).stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)]
    findings = [Finding("files", f"{len(names)} expected", f"missing: {', '.join(missing)}; provision them again "
                        "(`fedtriage provision FEDERATION.yaml --out KITS` makes only what is missing)")
                if missing else Finding("files", f"all {len(names)} present")]
    findings.append(
        Finding("private files", ", ".join(exposed), f"readable by others: `chmod 600 {' '.join(exposed)}` in {kit}")
        if exposed else Finding("private files", f"{', '.join(private)} readable by their owner only")
    )
    return findings


def _certificate_dates(what: str, path: Path, now: datetime.datetime) -> Finding:
    """A certificate valid now; one not valid yet means this machine's clock is behind."""
    try:
        certificate = tls.load_certificate(path)
    except ConfigError as err:
        return Finding(what, str(path), err.problem)
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    detail = f"valid {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d} UTC; this machine's clock says {now:%Y-%m-%d %H:%M}"
    if now < start:
        return Finding(what, detail, "not valid yet: this machine's clock is behind; set it right (NTP)")
    if now >= end:
        return Finding(what, detail, "expired: ask the coordinator for a renewed kit")
    return Finding(what, detail)


def _server_certificate(kit: Path, description: dict[str, Any], now: datetime.datetime) -> Finding:
    try:
        certificate = tls.load_certificate(kit / SERVER_CERT_FILE)
        ca = tls.load_certificate(kit / CA_CERT_FILE)
        key = tls.load_private_key(kit / SERVER_KEY_FILE)
        addresses = [parse_address(address, "coordinator.addresses")
                     for address in (description.get("coordinator") or {}).get("addresses") or []]
    except ConfigError as err:
        return Finding("server certificate", str(kit / SERVER_CERT_FILE), err.problem)
    names = ", ".join(tls.subject_alternative_names(certificate))
    detail = f"names {names}; valid to {certificate.not_valid_after_utc:%Y-%m-%d}"
    fix = "`fedtriage provision FEDERATION.yaml --out KITS --renew-certificate` (with the CA key brought back)"
    if problems := tls.certificate_problems(certificate, ca, key, addresses, now):
        return Finding("server certificate", detail, f"{'; '.join(problems)}: renew it, {fix}")
    if now < certificate.not_valid_before_utc:
        return Finding("server certificate", detail, "not valid yet: this machine's clock is behind")
    days = load_defaults().certificates.renew_before_days
    if certificate.not_valid_after_utc - now < datetime.timedelta(days=days):
        return Finding("server certificate", detail, f"expires within {days} days: renew it, {fix}")
    return Finding("server certificate", detail)


def _supernode_key(kit: Path) -> Finding:
    path = kit / SUPERNODE_KEY_FILE
    try:
        key = load_ssh_private_key(path.read_bytes(), password=None)
        public = read_public_key(kit / SUPERNODE_PUBLIC_KEY_FILE)
    except ConfigError as err:
        return Finding("SuperNode key", str(path), err.problem)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as err:
        return Finding("SuperNode key", str(path), f"not an OpenSSH private key Flower can load ({err})")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, CURVE):
        return Finding("SuperNode key", str(path), "not an EC P-384 key, which Flower's SuperNode needs")
    mine = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    if public.split()[:2] != mine.split()[:2]:
        return Finding("SuperNode key", str(path), f"does not match {SUPERNODE_PUBLIC_KEY_FILE}: the coordinator "
                       "registered the public key; ask for a rotated kit (`fedtriage provision rotate-unit`)")
    return Finding("SuperNode key", "EC P-384, matches its public key")


def _roster_entry(kit: Path, description: dict[str, Any], unit: str | None) -> Finding:
    """The kit's identity key is the roster's entry for it (the coordinator's when `unit` is None)."""
    try:
        roster = Roster.load(kit / ROSTER_FILE)
        identity = IdentityKey.load(kit / IDENTITY_FILE)
    except ConfigError as err:
        return Finding("identity and roster", str(kit), err.problem)
    expected = roster.server_key if unit is None else roster.node_key(unit)
    detail = f"roster of {roster.federation!r}, digest {roster.digest()[:16]}…, {len(roster.nodes)} units"
    if roster.federation != description.get("federation"):
        return Finding("identity and roster", detail, f"the roster is of federation {roster.federation!r}, the kit "
                       f"of {description.get('federation')!r}")
    if expected != identity.public:
        who = "the coordinator" if unit is None else f"unit {unit}"
        return Finding("identity and roster", detail, f"the roster's key for {who} is not this kit's identity key: "
                       "ask the coordinator for the current roster")
    return Finding("identity and roster", detail)


def _policy(path: Path) -> Finding:
    try:
        policy = load_node_policy(path)
    except ConfigError as err:
        return Finding("policy", str(path), f"{err}")
    source = str(path) if path.is_file() else "none given: the defaults"
    return Finding("policy", f"{source} (at least {policy.secure.min_peers} peers, sums over at least "
                   f"{policy.secure.min_cohort} nodes)")


def _holdings(path: Path, policy_file: Path) -> Finding:
    """The holdings exist and hold what the policy's `holdings.categories` maps (a VICS case must be mapped)."""
    try:
        categories = load_node_policy(policy_file).holdings.categories
    except ConfigError:
        categories = {}  # the policy's own finding says what is wrong with it
    if path.is_file():
        if not categories:
            return Finding("holdings", str(path), "a VICS case: map the federation's classes to its Category "
                           "numbers in the policy's holdings.categories")
        if not all(category.isdigit() for local in categories.values() for category in local):
            return Finding("holdings", str(path), "a VICS case: holdings.categories must give Category numbers")
        return Finding("holdings", f"{path}: a VICS case, {len(categories)} classes mapped to its categories")
    if not path.is_dir():
        return Finding("holdings", str(path), "no such folder or VICS case: give the folder of category "
                       "sub-folders or the case's JSON file")
    found = sorted(entry.name for entry in path.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if categories:
        missing = sorted(category for local in categories.values() for category in local if category not in found)
        if missing:
            return Finding("holdings", str(path), f"no category folder {', '.join(missing)}, which the policy's "
                           "holdings.categories maps: fix the names in the policy or the folders")
        return Finding("holdings", f"{path}: {len(categories)} classes mapped to its category folders")
    if len(found) < 2:
        return Finding("holdings", str(path), f"{len(found)} category folders; a classifier needs at least 2")
    return Finding("holdings", f"{path}: {len(found)} category folders ({', '.join(found[:8])}), each the "
                   "class of its name (the policy maps none)")


def _coordinator_reachable(ca_file: Path, fleet_address: str, timeout_s: float) -> Finding:
    """A TLS handshake with the coordinator, trusting the kit's CA only and checking the name."""
    host, _, port = fleet_address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    what = f"coordinator at {fleet_address}"
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
        with socket.create_connection((host, int(port)), timeout=timeout_s) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                pass
    except ssl.SSLCertVerificationError as err:
        return Finding(what, "TLS handshake", f"its certificate does not verify against this kit's CA for {host} "
                       f"({err.verify_message}): another federation's kit, a wrong address, or a clock outside "
                       "the certificate's dates")
    except ssl.SSLError as err:
        return Finding(what, "TLS handshake", f"no TLS there ({err.reason}): is this the Fleet port?")
    except TimeoutError:
        return Finding(what, "TCP", f"no answer within {timeout_s:g} s: a firewall, or a wrong address")
    except (OSError, ValueError) as err:
        return Finding(what, "TCP", f"cannot connect ({getattr(err, 'strerror', None) or err}): is the "
                       "coordinator started, and is this its address?")
    return Finding(what, "TLS handshake with this kit's CA: fine")
