"""Checkpoints keep model, round, strategy state and history, and load without pickled code."""

import numpy as np
import pytest
import torch
from flwr.serverapp.strategy import FedAdam

from fedtriage.errors import ConfigError
from fl_server.checkpoint import (
    Checkpoint,
    load_checkpoint,
    restore_strategy_state,
    save_checkpoint,
    strategy_state,
)
from fl_server.round_record import RoundRecord


def test_fedadam_moments_survive_a_checkpoint_round_trip(tmp_path) -> None:
    strategy = FedAdam()
    strategy.m_t = {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}
    strategy.v_t = {"w": np.full((2, 3), 0.5, dtype=np.float32)}
    history = [RoundRecord(round=0, central_eval={"eval-accuracy": 0.1}), RoundRecord(round=1, seconds=2.0)]
    checkpoint = Checkpoint(
        round=1, model_state={"w": torch.ones(2, 3)}, strategy_state=strategy_state(strategy), history=history
    )
    path = save_checkpoint(tmp_path, checkpoint, keep_last=2)
    loaded = load_checkpoint(path)
    fresh = FedAdam()
    restore_strategy_state(fresh, loaded.strategy_state)
    assert loaded.round == 1
    assert np.array_equal(fresh.m_t["w"], strategy.m_t["w"])
    assert np.array_equal(fresh.v_t["w"], strategy.v_t["w"])
    assert torch.equal(loaded.arrays().to_torch_state_dict()["w"], torch.ones(2, 3))
    assert loaded.history == history


def test_only_the_newest_checkpoints_are_kept(tmp_path) -> None:
    for round_ in range(1, 5):
        save_checkpoint(tmp_path, Checkpoint(round_, {"w": torch.zeros(1)}, {}, []), keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round_0003.pt", "round_0004.pt"]


def test_missing_or_foreign_checkpoint_names_the_setting(tmp_path) -> None:
    with pytest.raises(ConfigError, match="checkpoint.resume_from"):
        load_checkpoint(tmp_path / "nope.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ConfigError, match="not a fedtriage checkpoint"):
        load_checkpoint(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a zip")
    with pytest.raises(ConfigError, match="not a readable checkpoint"):
        load_checkpoint(garbage)
