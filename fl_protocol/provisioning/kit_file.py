"""`kit.yaml`: what a kit is, written into it for the people who install it and read back by
`add-unit` and `rotate-unit`, which take the federation from the coordinator's kit.

The coordinator's `kit.yaml` repeats the federation file's own keys (`federation`,
`coordinator`, `units`), so it parses as one; a unit's names its federation, itself and
the Fleet address its SuperNode connects to.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fedtriage.errors import ConfigError
from fl_protocol.identity.kits import COORDINATOR_KIT, IDENTITY_FILE, ROSTER_FILE, STATE_DIR
from fl_protocol.provisioning.defaults import ProvisionDefaults
from fl_protocol.provisioning.federation_file import Federation, parse_federation
from fl_protocol.provisioning.layout import (
    CA_CERT_FILE,
    KIT_FILE,
    README_FILE,
    SERVER_CERT_FILE,
    SERVER_KEY_FILE,
    SUPEREXEC_SECRET_FILE,
    SUPERNODE_KEY_FILE,
    SUPERNODE_PUBLIC_KEY_FILE,
    SUPERNODES_DIR,
    supernode_public_key_name,
)

_HEADER = "# Written by `fedtriage provision`; rewritten when the federation changes. README.txt says more.\n"


def coordinator_kit_yaml(federation: Federation) -> bytes:
    document = {
        "kit": "coordinator",
        "federation": federation.name,
        "coordinator": {
            "addresses": [address.text for address in federation.coordinator.addresses],
            "fleet_port": federation.coordinator.fleet_port,
        },
        "fleet_address": federation.coordinator.fleet_address,
        "units": list(federation.units),
        "files": {
            "ca_certificate": CA_CERT_FILE,
            "server_certificate": SERVER_CERT_FILE,
            "server_key": SERVER_KEY_FILE,
            "superexec_auth_secret": SUPEREXEC_SECRET_FILE,
            "identity_key": IDENTITY_FILE,
            "roster": ROSTER_FILE,
            "supernode_public_keys": {
                unit: f"{SUPERNODES_DIR}/{supernode_public_key_name(unit)}" for unit in federation.units
            },
            "readme": README_FILE,
        },
    }
    return (_HEADER + yaml.safe_dump(document, sort_keys=False)).encode()


def unit_kit_yaml(federation: Federation, unit: str) -> bytes:
    document = {
        "kit": "unit",
        "federation": federation.name,
        "unit": unit,
        "fleet_address": federation.coordinator.fleet_address,
        "files": {
            "root_certificates": CA_CERT_FILE,
            "supernode_private_key": SUPERNODE_KEY_FILE,
            "supernode_public_key": SUPERNODE_PUBLIC_KEY_FILE,
            "identity_key": IDENTITY_FILE,
            "roster": ROSTER_FILE,
            "state": f"{STATE_DIR}/",
            "readme": README_FILE,
        },
    }
    return (_HEADER + yaml.safe_dump(document, sort_keys=False)).encode()


def read_federation_of_kits(out: Path, defaults: ProvisionDefaults) -> Federation:
    """The federation as the coordinator's kit in `out` records it."""
    if not (out / COORDINATOR_KIT / KIT_FILE).is_file():
        raise ConfigError("--out", f"{out} holds no provisioned federation (no {out / COORDINATOR_KIT / KIT_FILE}); "
                          "run `fedtriage provision FEDERATION.yaml --out` first")
    return read_coordinator_kit(out / COORDINATOR_KIT, defaults, "--out")


def read_coordinator_kit(kit: Path, defaults: ProvisionDefaults, setting: str = "--kit") -> Federation:
    """The federation a coordinator's kit folder records (its `kit.yaml`)."""
    document = _kit_document(kit, setting)
    if document.get("kit", "coordinator") != "coordinator":
        raise ConfigError(setting, f"{kit} is a unit's kit; give the coordinator's")
    try:
        return parse_federation({key: document.get(key) for key in ("federation", "coordinator", "units")}, defaults)
    except ConfigError as err:
        raise ConfigError(setting, f"{kit / KIT_FILE}: {err}") from err


@dataclass(frozen=True)
class UnitKit:
    """What a unit's `kit.yaml` records."""

    path: Path
    federation: str
    unit: str
    fleet_address: str


def read_unit_kit(kit: Path, setting: str = "--kit") -> UnitKit:
    """The unit, federation and coordinator address a unit's kit folder records."""
    document = _kit_document(kit, setting)
    if document.get("kit") != "unit":
        raise ConfigError(setting, f"{kit} is not a unit's kit (its kit.yaml says kit: {document.get('kit')!r})")
    values = [document.get(key) for key in ("federation", "unit", "fleet_address")]
    if not all(isinstance(value, str) and value for value in values):
        raise ConfigError(setting, f"{kit / KIT_FILE} lacks federation, unit or fleet_address")
    return UnitKit(kit, *values)


def _kit_document(kit: Path, setting: str) -> dict[str, Any]:
    path = kit / KIT_FILE
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError(setting, f"{kit} is not a kit folder (no {KIT_FILE}): give a folder `fedtriage "
                          "provision` made") from err
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(setting, f"cannot read {path}: {str(err).splitlines()[0]}") from err
    if not isinstance(document, dict):
        raise ConfigError(setting, f"{path} is not a kit.yaml `fedtriage provision` wrote")
    return document
