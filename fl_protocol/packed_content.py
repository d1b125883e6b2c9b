"""A message's content travels as one record: three objects to transfer instead of one per record and array.

Flower stores and transfers a message as a tree of objects (the message, its RecordDict, each
record, each `Array`), each one an HTTPS request between SuperLink and SuperNode, again between
SuperNode and ClientApp, and between ServerApp and SuperLink. For a model of a few dozen layers
the requests, not the bytes, cost the round (seconds per model on a deployed federation), and
even a model packed into one array left six to nine objects per message. Both sides therefore
send a message's whole RecordDict serialized as Flower's own protobuf `RecordDict`, one byte
string in a single `ConfigRecord`, and unpack on receipt. Serializing copies bytes only, so
unpacking gives back exactly the records that were packed. In simulation it costs one copy.
"""

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flwr.common.serde import (
    array_record_to_proto,
    config_record_to_proto,
    metric_record_to_proto,
    recorddict_from_proto,
)
from flwr.proto.recorddict_pb2 import ArrayRecord as ProtoArrayRecord
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

# The one record of packed content, and its one value: the serialized RecordDict.
PACKED_RECORD = "fedtriage.packed"
_CONTENT = "content"

# An ArrayRecord (by identity) -> its protobuf: one stage's messages share the model.
PackCache = dict[int, ProtoArrayRecord]


def pack(content: RecordDict, cache: PackCache | None = None) -> RecordDict:
    """`content` as one ConfigRecord of its serialized bytes; an ArrayRecord already in `cache` (the
    same object, sent to another node) is serialized once. Packed content passes through."""
    if is_packed(content):
        return content
    items = [_item(name, record, cache) for name, record in content.items()]
    blob = ProtoRecordDict(items=items).SerializeToString()
    return RecordDict({PACKED_RECORD: ConfigRecord({_CONTENT: blob})})


def unpack(content: RecordDict) -> RecordDict:
    """`content` as it was before `pack`; content that was not packed passes through."""
    if not is_packed(content):
        return content
    blob = content[PACKED_RECORD].get(_CONTENT)
    if not isinstance(blob, bytes):
        raise ValueError(f"record {PACKED_RECORD!r} holds no packed content")
    proto = ProtoRecordDict()
    try:
        proto.ParseFromString(blob)
        return recorddict_from_proto(proto)
    except Exception as err:  # protobuf's DecodeError, or a record Flower cannot build
        raise ValueError(f"record {PACKED_RECORD!r} is not a readable RecordDict: {err}") from err


def _item(name: str, record: ArrayRecord | MetricRecord | ConfigRecord, cache: PackCache | None
          ) -> ProtoRecordDict.Item:
    if isinstance(record, ArrayRecord):
        proto = cache.get(id(record)) if cache is not None else None
        if proto is None:
            proto = array_record_to_proto(record)
            if cache is not None:
                cache[id(record)] = proto
        return ProtoRecordDict.Item(key=name, array_record=proto)
    if isinstance(record, MetricRecord):
        return ProtoRecordDict.Item(key=name, metric_record=metric_record_to_proto(record))
    return ProtoRecordDict.Item(key=name, config_record=config_record_to_proto(record))


def is_packed(content: RecordDict) -> bool:
    return list(content.keys()) == [PACKED_RECORD] and isinstance(content[PACKED_RECORD], ConfigRecord)
