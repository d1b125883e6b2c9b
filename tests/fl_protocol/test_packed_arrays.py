"""A model's arrays packed into one array for the wire come back exactly as they were."""

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fl_protocol.packed_arrays import LAYOUT_SUFFIX, pack, unpack


def _content() -> RecordDict:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(8, 4))
    return RecordDict({"arrays": ArrayRecord(model.state_dict()), "config": ConfigRecord({"server-round": 3}),
                       "metrics": MetricRecord({"loss": 0.5}), "masked": ArrayRecord({"y": Array(np.arange(5))})})


def test_a_model_travels_as_one_array_and_comes_back_identical() -> None:
    content = _content()
    packed = pack(content)
    assert list(packed["arrays"].keys()) == ["packed"]
    assert "arrays" + LAYOUT_SUFFIX in packed
    back = unpack(packed)
    assert list(back.keys()) == list(content.keys())
    before, after = content["arrays"].to_torch_state_dict(), back["arrays"].to_torch_state_dict()
    assert list(before) == list(after)
    assert all(before[name].dtype == after[name].dtype and torch.equal(before[name], after[name]) for name in before)


def test_single_arrays_and_other_records_pass_through_and_packing_twice_changes_nothing() -> None:
    packed = pack(_content())
    assert packed["masked"]["y"].numpy().tolist() == [0, 1, 2, 3, 4]
    assert list(pack(packed).keys()) == list(packed.keys())
    assert unpack(RecordDict({"config": ConfigRecord({"a": 1})}))["config"]["a"] == 1


def test_a_layout_that_does_not_fit_its_array_is_refused() -> None:
    packed = pack(_content())
    packed["arrays" + LAYOUT_SUFFIX] = ConfigRecord({"layout": '[{"name": "w", "dtype": "float32", "shape": [1], '
                                                               '"stype": "numpy.ndarray", "bytes": 3}]'})
    with pytest.raises(ValueError, match="layout names 3 bytes"):
        unpack(packed)


def test_a_model_shared_by_several_messages_is_packed_once() -> None:
    shared = _content()["arrays"]
    cache: dict = {}
    first = pack(RecordDict({"arrays": shared, "config": ConfigRecord({"node": 1})}), cache)
    second = pack(RecordDict({"arrays": shared, "config": ConfigRecord({"node": 2})}), cache)
    assert first["arrays"] is second["arrays"] and len(cache) == 1
    assert unpack(second)["config"]["node"] == 2
