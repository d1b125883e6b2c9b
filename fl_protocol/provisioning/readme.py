"""The README.txt of each kit: what every file is for and who must never see it, in plain words."""

from fl_protocol.identity.kits import IDENTITY_FILE, POLICY_FILE, ROSTER_FILE, STATE_DIR
from fl_protocol.provisioning.federation_file import Federation
from fl_protocol.provisioning.layout import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    KIT_FILE,
    README_FILE,
    RETIRED_DIR,
    SERVER_CERT_FILE,
    SERVER_KEY_FILE,
    SUPEREXEC_SECRET_FILE,
    SUPERNODE_KEY_FILE,
    SUPERNODE_PUBLIC_KEY_FILE,
    SUPERNODES_DIR,
)


def ca_readme(federation: Federation) -> str:
    return f"""\
Provisioning authority of federation {federation.name!r}: the CA's private key.
Made by `fedtriage provision`. Do not ship this folder to anyone.

{CA_KEY_FILE}
    The CA's private key. Whoever holds it can issue a certificate that every unit
    trusts as the coordinator's. SECRET: keep it offline (e.g. on an encrypted medium
    in a safe), never on the coordinator or a unit. It is needed again only to renew
    the coordinator's certificate: `fedtriage provision FILE --out KITS --renew-certificate`.
{CA_CERT_FILE}
    The CA's certificate (public). Every kit holds a copy.
{README_FILE}
    This file.
"""


def coordinator_readme(federation: Federation) -> str:
    port = federation.coordinator.fleet_port
    names = ", ".join(address.text for address in federation.coordinator.addresses)
    registers = "\n".join(
        f"    flwr supernode register {SUPERNODES_DIR}/{unit}.pub CONNECTION --name {unit}"
        for unit in federation.units
    )
    return f"""\
Coordinator kit of federation {federation.name!r}. Made by `fedtriage provision`.
Install it on the coordinator's machine only, readable by the account that runs the
SuperLink. Files marked SECRET must never leave it: not to the units, not to anyone.

{CA_CERT_FILE}
    The federation's CA certificate (public): the root the units trust.
{SERVER_CERT_FILE}
    The coordinator's TLS certificate (public), signed by the CA, valid for: {names}.
{SERVER_KEY_FILE}
    SECRET. The private key of that certificate: whoever holds it can pose as the
    coordinator to every unit.
{SUPEREXEC_SECRET_FILE}
    SECRET. The shared secret between the SuperLink and its SuperExec processes
    (`--superexec-auth-secret-file`, process isolation only); read as exact bytes.
{IDENTITY_FILE}
    SECRET. The coordinator's identity key: it signs secure aggregation's round keys,
    which every unit checks against the roster.
{ROSTER_FILE}
    The federation's roster (public keys only): every unit's identity key.
{SUPERNODES_DIR}/
    Every unit's SuperNode public key (`<unit>.pub`), to register with the SuperLink.
{KIT_FILE}
    What this kit is: the federation, its addresses, units and files.
{RETIRED_DIR}/
    Replaced certificates, one folder per replacement (UTC time).

Start the SuperLink (Flower 1.42; one server on port {port} serves the Fleet, Control
and Runtime APIs) from this folder:

    flower-superlink --ssl-ca-certfile {CA_CERT_FILE} --ssl-certfile {SERVER_CERT_FILE} \\
        --ssl-keyfile {SERVER_KEY_FILE} --enable-supernode-auth --host 0.0.0.0 --port {port}

With `--isolation process`, add `--superexec-auth-secret-file {SUPEREXEC_SECRET_FILE}` there and to
each `flower-superexec` you start beside it. Then allow each unit's SuperNode (CONNECTION:
your SuperLink connection in Flower's config.toml, with `root-certificates` = this {CA_CERT_FILE}):

{registers}
"""


def unit_readme(federation: Federation, unit: str) -> str:
    return f"""\
Kit of unit {unit!r} in federation {federation.name!r}. Made by `fedtriage provision`.
Install it on this unit's node machine only, readable by the account that runs the
SuperNode. Files marked SECRET must never leave it: not to the coordinator, not to
other units, not to anyone.

{CA_CERT_FILE}
    The federation's CA certificate (public). The node trusts only this root for the
    coordinator's TLS (`--root-certificates`).
{SUPERNODE_KEY_FILE}
    SECRET. This unit's SuperNode authentication key: whoever holds it can connect to
    the coordinator as this unit.
{SUPERNODE_PUBLIC_KEY_FILE}
    Its public key (the coordinator registers the same key).
{IDENTITY_FILE}
    SECRET. This unit's identity key: it signs this node's part of secure aggregation.
{ROSTER_FILE}
    The federation's roster (public keys only). Check its digest and fingerprints with
    the coordinator by another channel (phone) before you pin it.
{STATE_DIR}/
    What the node keeps between runs (e.g. its privacy ledger). Keep it, back it up.
{POLICY_FILE}
    Optional, yours to write: this node's own limits; keys left out take the defaults
    of configs/node/policy.yaml.
{KIT_FILE}
    What this kit is: the federation, this unit, the coordinator's Fleet address.
{RETIRED_DIR}/
    Replaced keys, one folder per replacement (UTC time). Still SECRET.

The coordinator's Fleet address is {federation.coordinator.fleet_address}. Start the SuperNode
(Flower 1.42), with KIT the absolute path of this folder:

    flower-supernode --superlink {federation.coordinator.fleet_address} --root-certificates KIT/{CA_CERT_FILE} \\
        --auth-supernode-private-key KIT/{SUPERNODE_KEY_FILE} --node-config 'kit="KIT"'
"""
