"""Shares travel node to node through the server sealed with AES-256-GCM, one key per box.

Each box is sealed under a key from a fresh X25519 key pair of its own and the
receiver's run key `c` (ECIES: the box starts with the ephemeral public key); the
associated data binds the round and both node ids, so a box cannot be replayed into
another round or redirected to another node unnoticed. Because every box has its own
key, its sender can later prove what a box holds by revealing that one box's
ephemeral secret (an accusation, see `fl_protocol.protection.secagg.session`), and
nothing else it sealed.
"""

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fl_protocol.protection.secagg import keys
from fl_protocol.protection.secagg.wire import id_bytes

_NONCE_BYTES = 12
# Purpose of the derived box key (`keys.derive_key`).
_PURPOSE = "share-box"


class TamperedBox(ValueError):
    """A sealed box failed authentication: altered, redirected or replayed."""


def seal(receiver_c_pk: bytes, plaintext: bytes, round_id: bytes, sender: int, receiver: int) -> tuple[bytes, bytes]:
    """The box for `receiver`, and the ephemeral secret that opens it (kept by the sender)."""
    ephemeral = keys.new_private_key()
    key = keys.derive_key(ephemeral, receiver_c_pk, _PURPOSE, round_id)
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, plaintext, _associated(round_id, sender, receiver))
    return keys.public_bytes(ephemeral) + nonce + sealed, keys.private_bytes(ephemeral)


def open_box(receiver_c_sk: bytes, box: bytes, round_id: bytes, sender: int, receiver: int) -> bytes:
    """The receiver opens a box with its run key."""
    try:
        key = keys.derive_key(keys.load_private(receiver_c_sk), box[: keys.KEY_BYTES], _PURPOSE, round_id)
    except ValueError as err:
        raise TamperedBox(f"share box from node {sender} to node {receiver} has no valid key") from err
    return _open(key, box, round_id, sender, receiver)


def open_revealed(
    ephemeral_secret: bytes, receiver_c_pk: bytes, box: bytes, round_id: bytes, sender: int, receiver: int
) -> bytes:
    """Anyone opens a box with the ephemeral secret its sender revealed, if it is that box's."""
    try:
        ephemeral = keys.load_private(ephemeral_secret)
    except ValueError as err:
        raise TamperedBox(f"node {sender} revealed no valid key for its box to node {receiver}") from err
    if keys.public_bytes(ephemeral) != box[: keys.KEY_BYTES]:
        raise TamperedBox(f"node {sender} revealed the key of another box than its box to node {receiver}")
    return _open(keys.derive_key(ephemeral, receiver_c_pk, _PURPOSE, round_id), box, round_id, sender, receiver)


def _open(key: bytes, box: bytes, round_id: bytes, sender: int, receiver: int) -> bytes:
    body = box[keys.KEY_BYTES :]
    try:
        return AESGCM(key).decrypt(body[:_NONCE_BYTES], body[_NONCE_BYTES:], _associated(round_id, sender, receiver))
    except (InvalidTag, ValueError) as err:
        raise TamperedBox(f"share box from node {sender} to node {receiver} failed authentication") from err


def _associated(round_id: bytes, sender: int, receiver: int) -> bytes:
    return round_id + id_bytes(sender) + id_bytes(receiver)
