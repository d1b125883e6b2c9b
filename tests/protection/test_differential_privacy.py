"""Differential privacy: central noise on the secure sum with a budget, and local DP-SGD."""

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fedtriage.errors import ConfigError
from fl_client.kit import node_kit
from fl_client.protection.contribution import encode_contribution
from fl_client.protection.local_dp import train_with_dpsgd
from fl_client.training import TrainResult
from fl_protocol.protection.secagg import session
from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings
from fl_server.protection.central_dp import CentralPrivacy
from models import EvaluationResult, load_model_file
from tests.support.inprocess_grid import federate_in_process
from tests.support.kits import SMALL_FEDERATION, provision_nodes


def federate(tmp_path: Path, *overrides: str) -> tuple[object, list[dict]]:
    settings: RunSettings = load_settings(
        ["federation.num_rounds=4", f"output_dir={tmp_path}", "tracking.enabled=false", *overrides]
    )
    summary, _ = federate_in_process(settings)
    return summary, json.loads((tmp_path / "history.json").read_text())


def test_central_dp_logs_epsilon_per_round_and_stops_before_the_budget(tmp_path: Path) -> None:
    summary, rounds = federate(
        tmp_path, "privacy=central", "privacy.noise_multiplier=1.0", "privacy.epsilon_budget=9",
    )
    epsilons = [r["protocol_metrics"]["dp-epsilon"] for r in rounds if "dp-epsilon" in r["protocol_metrics"]]
    assert epsilons == sorted(epsilons) and all(e <= 9 for e in epsilons)
    assert 1 <= len(epsilons) < 4  # the budget ends the run early
    assert "privacy.epsilon_budget=9" in summary.stopped_early
    assert summary.status == "FINISHED"


def test_central_dp_prices_each_round_at_the_rate_nodes_are_really_sampled(tmp_path: Path) -> None:
    # fraction_train=0.25 of 4 nodes is 1, but min_train_nodes=2: every round samples half of them.
    summary, rounds = federate(
        tmp_path, "privacy=central", "privacy.noise_multiplier=1.0", "privacy.epsilon_budget=5",
        "federation.fraction_train=0.25", "federation.min_train_nodes=2", *SMALL_FEDERATION,
    )
    trained = [r for r in rounds if "dp-epsilon" in r["protocol_metrics"]]
    assert trained and all(r["nodes_sampled"] == 2 for r in trained)
    assert all(r["protocol_metrics"]["dp-epsilon"] <= 5 for r in trained)
    assert "privacy.epsilon_budget=5" in summary.stopped_early


def test_node_clips_its_update_to_clip_norm_before_it_leaves() -> None:
    settings = load_settings(["privacy=central", "privacy.clip_norm=1.5", "secure.secagg.max_weight=100"])
    received = {"w": np.zeros(400)}
    trained = {"w": np.full(400, 0.5)}  # L2 norm 10, every value inside secure.secagg.clip_range
    contribution = encode_contribution(
        settings, received, trained, TrainResult(loss=0.1, num_examples=100, seconds=1.0),
        EvaluationResult(loss=0.1, accuracy=1.0, macro_f1=1.0, roc_auc=None, num_examples=10),
    )
    layout = session.layout(400, settings.secure.secagg, settings.federation.num_nodes)
    update = layout.decode_sum(contribution.encoded.vector, contributors=1)[session.UPDATE]
    assert contribution.encoded.out_of_range == 0  # the L2 clip did it, not the range clip
    step = layout.step(session.UPDATE)
    assert np.linalg.norm(update) == pytest.approx(1.5, abs=10 * step)  # 400 values, half a step each
    assert np.allclose(update, 1.5 / 20, atol=step)  # scaled down, direction kept


def test_central_dp_adds_noise_of_the_configured_std_to_the_sum(tmp_path: Path) -> None:
    # Same seed, same updates: the two final models differ only by the two runs' noise.
    overrides = ("privacy=central", "privacy.noise_multiplier=0.01", "privacy.clip_norm=2",
                 "privacy.epsilon_budget=1e12", "federation.num_rounds=1")
    (first, rounds), (second, _) = (federate(tmp_path / run, *overrides) for run in ("a", "b"))
    models = [load_model_file(Path(summary.final_model_path))[0].state_dict() for summary in (first, second)]
    difference = torch.cat([(models[0][k] - models[1][k]).flatten() for k in models[0]]).numpy()
    # Noise of std 0.01 * 2 on the sum, divided by the total weight (weighting=equal: the nodes that trained).
    total_weight = rounds[1]["protocol_metrics"]["secagg-used"]
    assert difference.std() == pytest.approx(np.sqrt(2) * 0.01 * 2 / total_weight, rel=0.05)


def test_central_dp_with_little_noise_still_learns(tmp_path: Path) -> None:
    _, rounds = federate(
        tmp_path, "privacy=central", "privacy.noise_multiplier=0.001", "privacy.clip_norm=5",
        "privacy.epsilon_budget=1e12",
    )
    assert rounds[-1]["central_eval"]["eval-accuracy"] > rounds[0]["central_eval"]["eval-accuracy"] + 0.3


def test_central_dp_needs_a_secure_sum() -> None:
    with pytest.raises(ConfigError, match="privacy.mode"):
        load_settings(["privacy=central", "secure=plaintext"])


def test_local_dpsgd_nodes_report_their_epsilon_and_sit_out_past_their_budget(tmp_path: Path) -> None:
    summary, rounds = federate(
        tmp_path, "privacy=local_dpsgd", "privacy.noise_multiplier=1.0", "privacy.epsilon_budget=4",
        "federation.num_rounds=3", "federation.max_consecutive_failed_rounds=3",
    )
    trained = [r for r in rounds if r["train_metrics"]]
    assert trained and all(0 < r["train_metrics"]["local-epsilon-mean"] <= 4 for r in trained)
    failed = [r for r in rounds if r["round"] > 0 and not r["train_metrics"]]
    # The coordinator learns the code only: the planned epsilon would give the node's dataset size.
    reasons = [reason for r in failed for reason in r["node_failures"].values()]
    assert failed and all(reason.endswith("refused: privacy-budget") for reason in reasons)


def test_a_node_may_spend_exactly_the_epsilon_its_ledger_records(tmp_path: Path) -> None:
    # 100 examples in batches of 40: Opacus samples at 1 / 3 batches, not 40 / 100.
    settings = load_settings(["privacy=local_dpsgd", "privacy.epsilon_budget=1e9", "train.batch_size=40"])
    dataset = TensorDataset(torch.randn(100, 4), torch.randint(0, 2, (100,)))
    _, configs = provision_nodes(tmp_path, [1, 2])  # two nodes: each trains once on a fresh ledger

    def train(node: int, budget: float) -> float | None:
        privacy = dataclasses.replace(settings.privacy, epsilon_budget=budget)
        kit = node_kit(configs[node])
        return train_with_dpsgd(nn.Linear(4, 2), dataset, settings.train, privacy, 0, kit).epsilon

    spent = train(1, 1e9)
    assert spent is not None and train(2, spent * (1 + 1e-9)) == pytest.approx(spent)


def test_central_dp_whose_noise_swamps_the_update_is_named_before_round_1_and_clipped_losses_say_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fedtriage.server"):
        # Noise of std 20 per value of the mean: the model collapses.
        summary, rounds = federate(
            tmp_path, "privacy=central", "privacy.noise_multiplier=80", "federation.num_rounds=3"
        )
    (warning,) = [r.getMessage() for r in caplog.records if "privacy=central" in r.getMessage()]
    assert "will not learn" in warning and "privacy.noise_multiplier" in warning and "nodes" in warning
    trained = [r for r in rounds if r["round"] >= 1]
    clipped = [r["train_metrics"].get("train-loss-at-bound", 0) for r in trained]
    assert any(clipped)  # the collapsed model's losses hit the bound, and the record says so


def test_central_dp_on_a_cohort_large_enough_for_its_noise_gives_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    privacy = CentralPrivacy(load_settings(["privacy=central", "privacy.noise_multiplier=0.5"]))
    assert privacy.noise_warning(update_values=10_000, sampled=100) is None
    assert privacy.noise_warning(update_values=10_000, sampled=10) is not None
