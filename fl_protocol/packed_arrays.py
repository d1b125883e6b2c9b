"""A model's arrays travel as one array: one object to transfer instead of one per layer.

Flower stores and transfers every `Array` of a message as its own object, each one an HTTPS
request between SuperLink and SuperNode, and again between SuperNode and ClientApp. For a
model of a few dozen layers the requests, not the bytes, cost the round (seconds per model on
a deployed federation). Both sides therefore pack each `ArrayRecord` of several arrays into
one array of its arrays' serialized bytes, with a layout (name, dtype, shape, stype and
length of each) in a `ConfigRecord` beside it, and unpack on receipt. Packing copies bytes
only, so unpacking gives back exactly the arrays that were packed.
"""

import json
from typing import Any

from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

# The packed record keeps its name; its layout goes under the name plus this suffix.
LAYOUT_SUFFIX = ".packed-layout"
_PACKED = "packed"
_LAYOUT = "layout"
_PACKED_STYPE = "fedtriage.packed"


# An ArrayRecord (by identity) -> its packed array and layout: one stage's messages share the model.
PackCache = dict[int, tuple[ArrayRecord, ConfigRecord]]


def pack(content: RecordDict, cache: PackCache | None = None) -> RecordDict:
    """`content` with each ArrayRecord of two or more arrays packed into one array; a record already in
    `cache` (the same object, sent to another node) is packed once."""
    packed = RecordDict()
    for name, record in content.items():
        if not isinstance(record, ArrayRecord) or len(record) < 2:
            packed[name] = record
            continue
        if cache is not None and id(record) in cache:
            packed[name], packed[name + LAYOUT_SUFFIX] = cache[id(record)]
            continue
        layout: list[dict[str, Any]] = []
        parts: list[bytes] = []
        for key, array in record.items():
            layout.append({"name": key, "dtype": array.dtype, "shape": list(array.shape), "stype": array.stype,
                           "bytes": len(array.data)})
            parts.append(array.data)
        blob = b"".join(parts)
        packed[name] = ArrayRecord({_PACKED: Array(dtype="uint8", shape=(len(blob),), stype=_PACKED_STYPE, data=blob)})
        packed[name + LAYOUT_SUFFIX] = ConfigRecord({_LAYOUT: json.dumps(layout)})
        if cache is not None:
            cache[id(record)] = (packed[name], packed[name + LAYOUT_SUFFIX])
    return packed


def unpack(content: RecordDict) -> RecordDict:
    """`content` as it was before `pack` (records that were not packed pass through)."""
    unpacked = RecordDict()
    for name, record in content.items():
        if name.endswith(LAYOUT_SUFFIX) and name.removesuffix(LAYOUT_SUFFIX) in content:
            continue
        layout_record = content.get(name + LAYOUT_SUFFIX)
        if not isinstance(record, ArrayRecord) or not isinstance(layout_record, ConfigRecord):
            unpacked[name] = record
            continue
        unpacked[name] = _unpacked_record(name, record, layout_record)
    return unpacked


def _unpacked_record(name: str, record: ArrayRecord, layout_record: ConfigRecord) -> ArrayRecord:
    packed = record.get(_PACKED)
    if packed is None or packed.stype != _PACKED_STYPE or len(record) != 1:
        raise ValueError(f"record {name!r} has a packing layout but is not a packed array")
    blob = packed.data
    try:
        layout = json.loads(str(layout_record[_LAYOUT]))
        arrays: dict[str, Array] = {}
        offset = 0
        for entry in layout:
            end = offset + int(entry["bytes"])
            arrays[str(entry["name"])] = Array(dtype=str(entry["dtype"]), shape=tuple(int(n) for n in entry["shape"]),
                                               stype=str(entry["stype"]), data=blob[offset:end])
            offset = end
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"record {name!r} has an unreadable packing layout: {err}") from err
    if offset != len(blob):
        raise ValueError(f"record {name!r}: its layout names {offset} bytes, the packed array holds {len(blob)}")
    return ArrayRecord(arrays)
