"""Long-term identity keys (Ed25519, from `cryptography`) and the signatures made with them.

A signature names its purpose and covers length-prefixed parts, so a signature made for
one step of a protocol can never be replayed as another's.
"""

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from fedtriage.errors import ConfigError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class IdentityKey:
    """A party's private signing key; only its owner's kit holds it."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> "IdentityKey":
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> "IdentityKey":
        """The key in PEM file `path`; a missing or foreign file is a `ConfigError` naming it."""
        try:
            private = load_pem_private_key(path.read_bytes(), password=None)
        except OSError as err:
            raise ConfigError("kit", f"cannot read identity key {path}: {err.strerror}") from err
        except (ValueError, TypeError) as err:
            raise ConfigError("kit", f"{path} is not an unencrypted PEM identity key") from err
        if not isinstance(private, Ed25519PrivateKey):
            raise ConfigError("kit", f"{path} holds a {type(private).__name__}, not an Ed25519 identity key")
        return cls(private)

    def save(self, path: Path) -> None:
        """Write the key readable by its owner only (created 0600, never overwritten)."""
        pem = self._private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)

    def sign(self, purpose: str, *parts: bytes) -> bytes:
        return self._private.sign(_signed_bytes(purpose, parts))


def verify(public: bytes, signature: bytes, purpose: str, *parts: bytes) -> bool:
    """True when `signature` is `public`'s over `purpose` and `parts`; anything malformed is False."""
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES or len(public) != PUBLIC_KEY_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, _signed_bytes(purpose, parts))
    except (InvalidSignature, ValueError):
        return False
    return True


def fingerprint(public: bytes) -> str:
    """SHA-256 of a public key, as a unit reads it out on the phone: `SHA256:` and base64."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(public).digest()).decode().rstrip("=")


def _signed_bytes(purpose: str, parts: tuple[bytes, ...]) -> bytes:
    chunks = [f"fedtriage/{purpose}".encode()]
    chunks.extend(bytes(part) for part in parts)
    return b"".join(len(chunk).to_bytes(8, "big") + chunk for chunk in chunks)
