"""Checkpoints keep model, round, strategy state, history and the central-DP ledger, and load
without pickled code."""

import numpy as np
import pytest
import torch
from flwr.serverapp.strategy import FedAdam

from fedtriage.errors import ConfigError
from fl_protocol.run_config import load_settings
from fl_server.checkpoint import (
    Checkpoint,
    load_checkpoint,
    restore_strategy_state,
    resumed_privacy_ledger,
    save_checkpoint,
    strategy_state,
)
from fl_server.protection.central_dp import CentralPrivacy
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


def test_the_central_dp_ledger_survives_a_checkpoint_round_trip_and_prices_the_next_round_alike(tmp_path) -> None:
    settings = load_settings(["privacy=central", "privacy.noise_multiplier=1.0", "privacy.epsilon_budget=10"])
    spent = CentralPrivacy(settings)
    for _ in range(2):
        spent.record_round(sampled=4)
    path = save_checkpoint(tmp_path, Checkpoint(2, {"w": torch.zeros(1)}, {}, [], privacy_ledger=spent.ledger()), 1)
    resumed = CentralPrivacy(settings)
    resumed.resume(resumed_privacy_ledger(settings, load_checkpoint(path)) or [])
    assert resumed.ledger() == spent.ledger() == [(1.0, 1.0, 2)]
    assert resumed.metrics()["dp-epsilon"] == spent.metrics()["dp-epsilon"]
    assert resumed.refuses_round(3, connected=4) == spent.refuses_round(3, connected=4)


def test_a_checkpoint_without_a_ledger_still_loads_and_resumes_any_run_but_a_central_dp_one(tmp_path) -> None:
    # As fedtriage wrote them before the ledger was checkpointed: no "privacy_ledger" entry at all.
    old = tmp_path / "round_0001.pt"
    torch.save({"format": "fedtriage-checkpoint-1", "round": 1, "model_state": {"w": torch.zeros(1)},
                "strategy_state": {}, "history": []}, old)
    checkpoint = load_checkpoint(old)
    assert checkpoint.privacy_ledger is None
    assert resumed_privacy_ledger(load_settings([f"checkpoint.resume_from={old}"]), checkpoint) is None
    with pytest.raises(ConfigError, match="privacy ledger") as refused:
        resumed_privacy_ledger(load_settings(["privacy=central", f"checkpoint.resume_from={old}"]), checkpoint)
    assert refused.value.key == "checkpoint.resume_from" and str(old) in str(refused.value)


@pytest.mark.parametrize("ledger", [[["one", 1.0, 2]], [[1.0, 1.5, 2]], [[1.0, 1.0]], 7])
def test_a_malformed_privacy_ledger_names_the_checkpoint(tmp_path, ledger) -> None:
    path = tmp_path / "round_0001.pt"
    torch.save({"format": "fedtriage-checkpoint-1", "round": 1, "model_state": {}, "strategy_state": {},
                "history": [], "privacy_ledger": ledger}, path)
    with pytest.raises(ConfigError, match="checkpoint.resume_from.*privacy ledger"):
        load_checkpoint(path)
