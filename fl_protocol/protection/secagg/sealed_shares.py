"""Shares travel node to node through the server sealed with AES-256-GCM.

The key comes from the two nodes' X25519 keys (`keys.derive_key`, purpose
"share-box"); the associated data binds the round and both node ids, so a box
cannot be replayed into another round or redirected to another node unnoticed.
"""

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fl_protocol.protection.secagg.wire import id_bytes

_NONCE_BYTES = 12


class TamperedBox(ValueError):
    """A sealed box failed authentication: altered, redirected or replayed."""


def seal(key: bytes, plaintext: bytes, round_id: bytes, sender: int, receiver: int) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, _associated(round_id, sender, receiver))


def open_box(key: bytes, box: bytes, round_id: bytes, sender: int, receiver: int) -> bytes:
    try:
        return AESGCM(key).decrypt(box[:_NONCE_BYTES], box[_NONCE_BYTES:], _associated(round_id, sender, receiver))
    except (InvalidTag, ValueError) as err:
        raise TamperedBox(f"share box from node {sender} to node {receiver} failed authentication") from err


def _associated(round_id: bytes, sender: int, receiver: int) -> bytes:
    return round_id + id_bytes(sender) + id_bytes(receiver)
