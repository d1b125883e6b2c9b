"""A message's content packed into one record for the wire comes back exactly as it was."""

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fl_protocol.packed_content import PACKED_RECORD, is_packed, pack, unpack


def _content() -> RecordDict:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(8, 4))
    return RecordDict({"arrays": ArrayRecord(model.state_dict()),
                       "config": ConfigRecord({"server-round": 3, "b": b"x"}), "metrics": MetricRecord({"loss": 0.5}),
                       "masked": ArrayRecord({"y": Array(np.arange(5))})})


def test_content_travels_as_one_record_and_comes_back_identical() -> None:
    content = _content()
    packed = pack(content)
    assert list(packed.keys()) == [PACKED_RECORD] and is_packed(packed)
    back = unpack(packed)
    assert list(back.keys()) == list(content.keys())
    before, after = content["arrays"].to_torch_state_dict(), back["arrays"].to_torch_state_dict()
    assert list(before) == list(after)
    assert all(before[name].dtype == after[name].dtype and torch.equal(before[name], after[name]) for name in before)
    assert back["masked"]["y"].numpy().tolist() == [0, 1, 2, 3, 4]
    assert dict(back["config"]) == {"server-round": 3, "b": b"x"} and dict(back["metrics"]) == {"loss": 0.5}


def test_content_that_was_not_packed_passes_through_and_packing_twice_changes_nothing() -> None:
    packed = pack(_content())
    assert pack(packed) is packed
    assert unpack(RecordDict({"config": ConfigRecord({"a": 1})}))["config"]["a"] == 1


@pytest.mark.parametrize("value", [b"\xff\xff\xff not protobuf", "a string", 7])
def test_packed_content_that_cannot_be_read_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match=PACKED_RECORD):
        unpack(RecordDict({PACKED_RECORD: ConfigRecord({"content": value})}))


def test_a_model_shared_by_several_messages_is_serialized_once() -> None:
    shared = _content()["arrays"]
    cache: dict = {}
    first = pack(RecordDict({"arrays": shared, "config": ConfigRecord({"node": 1})}), cache)
    second = pack(RecordDict({"arrays": shared, "config": ConfigRecord({"node": 2})}), cache)
    assert len(cache) == 1
    assert unpack(first)["config"]["node"] == 1 and unpack(second)["config"]["node"] == 2
    assert unpack(second)["arrays"].keys() == shared.keys()
