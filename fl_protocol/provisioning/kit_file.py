"""`kit.yaml`: what a kit is, written into it for the people who install it and read back by
`add-unit` and `rotate-unit`, which take the federation from the coordinator's kit.

The coordinator's `kit.yaml` repeats the federation file's own keys (`federation`,
`coordinator`, `units`), so it parses as one; a unit's names its federation, itself and
the Fleet address its SuperNode connects to.
"""

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
    path = out / COORDINATOR_KIT / KIT_FILE
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigError("--out", f"{out} holds no provisioned federation (no {path}); run `fedtriage provision "
                          "FEDERATION.yaml --out` first") from err
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError("--out", f"cannot read {path}: {str(err).splitlines()[0]}") from err
    if not isinstance(document, dict):
        raise ConfigError("--out", f"{path} is not a coordinator's kit.yaml")
    try:
        return parse_federation({key: document.get(key) for key in ("federation", "coordinator", "units")}, defaults)
    except ConfigError as err:
        raise ConfigError("--out", f"{path}: {err}") from err
