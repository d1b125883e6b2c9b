"""Masks: a 32-byte seed expanded into a vector of uint32 with ChaCha20.

The whole 256-bit seed keys the stream cipher; every seed masks exactly one vector
(seeds are fresh per round and purpose), so the fixed nonce is never reused with a key.
Arithmetic on masked vectors is modulo 2^32 (numpy uint32 wraps).
"""

import functools

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

_NONCE = bytes(16)  # ChaCha20 in `cryptography`: 4-byte counter + 12-byte nonce, both zero


def mask_vector(seed: bytes, length: int) -> np.ndarray:
    """`length` uint32 values drawn from the ChaCha20 keystream of `seed`."""
    if len(seed) != 32:
        raise ValueError(f"mask seeds are 32 bytes, got {len(seed)}")
    encryptor = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None).encryptor()
    stream = encryptor.update(_zeros(4 * length))
    return np.frombuffer(stream, dtype="<u4").astype(np.uint32, copy=False)


@functools.lru_cache(maxsize=4)
def _zeros(size: int) -> bytes:
    """The zeros the keystream encrypts, kept per vector size: a fresh 4 MB of them cost
    three times the cipher itself (a round draws one mask per neighbour)."""
    return bytes(size)
