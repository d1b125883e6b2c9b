"""SuperNode authentication keys, in the form Flower 1.42 loads them.

`flower-supernode --auth-supernode-private-key FILE` reads FILE with `cryptography`'s
`load_ssh_private_key` and requires an EC key (`flwr/supernode/cli/flower_supernode.py`,
`_try_setup_client_authentication`); `flwr supernode register FILE.pub` reads the public
key with `load_ssh_public_key` and requires EC on a NIST curve
(`flwr/cli/supernode/register.py`, `try_load_public_key`). So: EC P-384, the private
key in OpenSSH format, the public key as one OpenSSH line (`ecdsa-sha2-nistp384 ...`),
exactly what `ssh-keygen -t ecdsa -b 384` writes.
"""

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_ssh_public_key,
)

from fedtriage.errors import ConfigError

CURVE = ec.SECP384R1


@dataclass(frozen=True)
class SupernodeKey:
    """A unit's SuperNode key pair as file contents."""

    private_openssh: bytes
    public_openssh: bytes


def new_supernode_key(comment: str) -> SupernodeKey:
    """A fresh P-384 key; `comment` ends the public key line (as ssh-keygen's `-C`)."""
    key = ec.generate_private_key(CURVE())
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    return SupernodeKey(
        private_openssh=key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()),
        public_openssh=public + f" {comment}\n".encode(),
    )


def fingerprint(public_openssh: bytes) -> str:
    """SHA-256 of the key blob, as `ssh-keygen -l` prints it: `SHA256:` and unpadded base64."""
    blob = base64.b64decode(public_openssh.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def read_public_key(path: Path) -> bytes:
    """The OpenSSH public key line in `path`, checked to be EC P-384; else a `ConfigError` naming the file."""
    try:
        text = path.read_bytes()
        key = load_ssh_public_key(text)
    except OSError as err:
        raise ConfigError("--out", f"cannot read SuperNode public key {path}: {err.strerror}") from err
    except (ValueError, IndexError, UnsupportedAlgorithm) as err:
        raise ConfigError("--out", f"{path} is not an OpenSSH public key") from err
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, CURVE):
        raise ConfigError("--out", f"{path} is not an EC P-384 SuperNode public key")
    return text
