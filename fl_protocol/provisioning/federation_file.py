"""The federation file: which federation, where its coordinator is reached, which units take part.

    federation: demo
    coordinator:
      addresses: [127.0.0.1, localhost]   # every name or IP units may use; the first is the one kits name
      fleet_port: 8000                    # optional (configs/deployment/provision.yaml)
    units: [unit1, unit2, unit3]
    certificates:                         # optional, key by key
      server_validity_days: 365

Everything is checked before any key is made: a bad value is one `ConfigError` naming
its key, e.g. `units[2]: 'Unit 3' is not a unit name ...`.
"""

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from configs.errors import unknown_key
from fedtriage.errors import ConfigError
from fl_protocol.provisioning.defaults import CertificateSettings, ProvisionDefaults, check_certificate_settings
from fl_protocol.provisioning.layout import RESERVED_KIT_NAMES

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_UNIT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_FEDERATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_TOP_KEYS = ("federation", "coordinator", "units", "certificates")
_COORDINATOR_KEYS = ("addresses", "fleet_port")


@dataclass(frozen=True)
class CoordinatorAddress:
    """A name or IP address units may reach the coordinator at; its certificate must name each."""

    text: str  # normalised: a lower-case DNS name, or the IP address in its canonical form
    ip: IPAddress | None = None

    def with_port(self, port: int) -> str:
        """`host:port` as Flower's `--superlink` takes it (an IPv6 address in brackets)."""
        host = f"[{self.text}]" if isinstance(self.ip, ipaddress.IPv6Address) else self.text
        return f"{host}:{port}"


@dataclass(frozen=True)
class Coordinator:
    addresses: tuple[CoordinatorAddress, ...]
    fleet_port: int

    @property
    def fleet_address(self) -> str:
        """What units connect to: the first address, at the Fleet port."""
        return self.addresses[0].with_port(self.fleet_port)


@dataclass(frozen=True)
class Federation:
    """A parsed, checked federation file."""

    name: str
    coordinator: Coordinator
    units: tuple[str, ...]
    certificates: CertificateSettings


def load_federation(path: Path, defaults: ProvisionDefaults) -> Federation:
    """The federation file at `path`, with `defaults` for what it leaves out."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError("FEDERATION", f"no such file: {path}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError("FEDERATION", f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).split("\n", 1)[0]
        raise ConfigError("FEDERATION", f"{path} is not valid YAML{where}: {problem}") from err
    try:
        return parse_federation(document, defaults)
    except ConfigError as err:
        raise ConfigError(err.key, f"{err.problem} (in {path})") from err


def parse_federation(document: Any, defaults: ProvisionDefaults) -> Federation:
    """A federation file's content, checked key by key."""
    if not isinstance(document, dict):
        raise ConfigError("federation", "the file must be a mapping with federation, coordinator and units")
    _known_keys(document, _TOP_KEYS, "")
    name = _required(document, "federation")
    if not isinstance(name, str) or not _FEDERATION_NAME.fullmatch(name):
        raise ConfigError(
            "federation", f"{name!r} is not a federation name (letters, digits, '.', '-', '_'; at most 63)"
        )
    coordinator = _required(document, "coordinator")
    if not isinstance(coordinator, dict):
        raise ConfigError("coordinator", "must be a mapping with addresses (and optionally fleet_port)")
    _known_keys(coordinator, _COORDINATOR_KEYS, "coordinator")
    units = _required(document, "units")
    if not isinstance(units, list) or not units:
        raise ConfigError("units", "must be a non-empty list of unit names, e.g. [unit1, unit2]")
    checked_units: list[str] = []
    for index, unit in enumerate(units):
        check_unit_name(unit, f"units[{index}]")
        if unit in checked_units:
            raise ConfigError(f"units[{index}]", f"unit {unit!r} is listed twice")
        checked_units.append(unit)
    return Federation(
        name=name,
        coordinator=Coordinator(
            addresses=_addresses(_required(coordinator, "addresses", "coordinator")),
            fleet_port=_port(coordinator.get("fleet_port", defaults.coordinator.fleet_port)),
        ),
        units=tuple(checked_units),
        certificates=_certificates(document.get("certificates"), defaults.certificates),
    )


def check_unit_name(name: object, key: str) -> None:
    """A unit name is a kit folder's and a roster entry's name: plain, lower-case, not reserved."""
    if not isinstance(name, str) or not _UNIT_NAME.fullmatch(name):
        raise ConfigError(
            key,
            f"{name!r} is not a unit name (lower-case letters, digits, '-' and '_', starting with a letter or "
            "digit, at most 63)",
        )
    if name in RESERVED_KIT_NAMES:
        raise ConfigError(key, f"{name!r} is reserved for a kit folder of its own; choose another unit name")


def parse_address(value: object, key: str) -> CoordinatorAddress:
    """A host name or an IP address that a certificate can name; never a URL, a port or 0.0.0.0."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"must be a host name or an IP address, got {value!r}")
    text = value.strip()
    if "/" in text or "@" in text:
        raise ConfigError(key, f"{text!r}: give a host name or an IP address, not a URL")
    try:
        ip = ipaddress.ip_address(text.removeprefix("[").removesuffix("]"))
    except ValueError:
        ip = None
    if ip is not None:
        if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
            raise ConfigError(key, f"{text!r}: an IPv6 address with a zone (%...) cannot be named in a certificate")
        if ip.is_unspecified:
            raise ConfigError(key, f"{text!r} is where a server listens, not an address units connect to")
        return CoordinatorAddress(str(ip), ip)
    if ":" in text:
        raise ConfigError(key, f"{text!r}: give the port as coordinator.fleet_port, not in the address")
    name = text.lower().removesuffix(".")
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(_DNS_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()  # "10.0.0.256", "1.2.3": a mistyped IP address, not a name
    ):
        raise ConfigError(
            key,
            f"{text!r} is neither an IP address nor a DNS name (labels of letters, digits and '-', "
            "not all digits at the end)",
        )
    return CoordinatorAddress(name)


def _addresses(value: Any) -> tuple[CoordinatorAddress, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("coordinator.addresses", "must be a non-empty list of host names or IP addresses")
    addresses: list[CoordinatorAddress] = []
    for index, entry in enumerate(value):
        address = parse_address(entry, f"coordinator.addresses[{index}]")
        if address in addresses:
            raise ConfigError(f"coordinator.addresses[{index}]", f"{address.text!r} is listed twice")
        addresses.append(address)
    return tuple(addresses)


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError("coordinator.fleet_port", f"must be a port number in [1, 65535], got {value!r}")
    return value


def _certificates(value: Any, defaults: CertificateSettings) -> CertificateSettings:
    if value is None:
        return defaults
    fields = [item.name for item in dataclasses.fields(CertificateSettings)]
    if not isinstance(value, dict):
        raise ConfigError("certificates", f"must be a mapping of {', '.join(fields)}")
    _known_keys(value, fields, "certificates")
    for key, days in value.items():
        if isinstance(days, bool) or not isinstance(days, int):
            raise ConfigError(f"certificates.{key}", f"must be a whole number, got {days!r}")
    settings = dataclasses.replace(defaults, **value)
    check_certificate_settings(settings, "certificates")
    return settings


def _required(mapping: dict[str, Any], key: str, parent: str = "") -> Any:
    dotted = f"{parent}.{key}" if parent else key
    if mapping.get(key) is None:
        raise ConfigError(dotted, "missing; the federation file must give it")
    return mapping[key]


def _known_keys(mapping: dict[Any, Any], known: tuple[str, ...] | list[str], parent: str) -> None:
    for key in mapping:
        if key not in known:
            raise unknown_key(f"{parent}.{key}" if parent else str(key), known)
