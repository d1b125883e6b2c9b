"""Key agreement and key derivation: X25519 then HKDF-SHA256, bound to a context.

Every derived key names its purpose and the round, so keys from one exchange are
never reused for another: pairwise mask seeds, share-encryption keys and the key a
node authenticates its replies to the server with all differ.
"""

import hashlib
from hmac import compare_digest

import numpy as np
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

KEY_BYTES = 32


def new_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def private_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_private(raw: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(raw)


def derive_key(private: X25519PrivateKey, peer_public: bytes, purpose: str, context: bytes) -> bytes:
    """A 32-byte key both ends of an X25519 exchange derive alike for `purpose` and `context`."""
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=context, info=f"fedtriage/{purpose}".encode()
    ).derive(shared)


def usable_public(public: bytes) -> bool:
    """Whether `public` is an X25519 key an exchange can use: a low-order point (e.g. all zeros)
    gives no shared secret, and a peer who signs one would make every exchange with it fail."""
    try:
        new_private_key().exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError:
        return False
    return True


def tag(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 over length-prefixed `parts` (unambiguous concatenation)."""
    mac = hmac.HMAC(key, hashes.SHA256())
    for part in parts:
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.finalize()


def verify_tag(key: bytes, expected: bytes, *parts: bytes) -> bool:
    """Constant-time check of a `tag`; anything but bytes never matches."""
    return isinstance(expected, bytes) and compare_digest(tag(key, *parts), expected)


def digest(data: bytes | np.ndarray) -> bytes:
    """SHA-256 of a payload, so tags over large vectors stay cheap to pass around.

    An array is hashed as its buffer in memory (C order, its own byte order), without a copy.
    """
    if isinstance(data, np.ndarray):
        return hashlib.sha256(memoryview(np.ascontiguousarray(data)).cast("B")).digest()
    return hashlib.sha256(data).digest()
