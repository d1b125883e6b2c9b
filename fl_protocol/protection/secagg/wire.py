"""Encodings for values Flower's records cannot carry as they are.

Flower node ids are unsigned 64-bit integers, beyond the signed 64-bit ints a
ConfigRecord serializes; lists of them travel as packed bytes instead (which also
makes empty lists unambiguous).
"""

from collections.abc import Sequence

import numpy as np


def ids_to_bytes(node_ids: Sequence[int]) -> bytes:
    return np.asarray(list(node_ids), dtype="<u8").tobytes()


def ids_from_bytes(raw: bytes) -> list[int]:
    return [int(value) for value in np.frombuffer(raw, dtype="<u8")]


def id_bytes(node_id: int) -> bytes:
    return int(node_id).to_bytes(8, "little", signed=False)
