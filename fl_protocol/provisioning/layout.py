"""The names of everything provisioning writes into a kit folder, in one place.

The names a node or coordinator already reads (`identity.key`, `roster.json`,
`policy.yaml`, `state/`) stay in `fl_protocol.identity.kits`; these are the files a
real deployment adds: TLS, SuperNode authentication, the SuperExec secret, and the
kit's own description.
"""

from fl_protocol.identity.kits import COORDINATOR_KIT

# The provisioning authority's folder: the CA's private key, to keep offline.
CA_KIT = "ca"
# Kit folder names a unit cannot take.
RESERVED_KIT_NAMES = (CA_KIT, COORDINATOR_KIT, "retired")

CA_KEY_FILE = "ca.key"
# In every kit: the CA certificate, the one root a unit trusts for the coordinator's TLS.
CA_CERT_FILE = "ca.crt"
SERVER_CERT_FILE = "server.crt"
SERVER_KEY_FILE = "server.key"
# Raw bytes (hex text, no newline), read by `--superexec-auth-secret-file`.
SUPEREXEC_SECRET_FILE = "superexec-auth-secret"
# A unit's SuperNode authentication key pair, as `ssh-keygen -f supernode.key` names them.
SUPERNODE_KEY_FILE = "supernode.key"
SUPERNODE_PUBLIC_KEY_FILE = "supernode.key.pub"
# In the coordinator's kit: every unit's SuperNode public key, `<unit>.pub`, to register.
SUPERNODES_DIR = "supernodes"
KIT_FILE = "kit.yaml"
README_FILE = "README.txt"
# Where replaced keys and certificates go, one folder per replacement: `retired/<UTC time>/`.
RETIRED_DIR = "retired"


def supernode_public_key_name(unit: str) -> str:
    """The file of `unit`'s SuperNode public key inside the coordinator's `supernodes/`."""
    return f"{unit}.pub"
