"""Differential privacy: central noise on the secure sum with a budget, and local DP-SGD."""

import json
from pathlib import Path

import pytest

from fl_client.client_app import app as client_app
from fl_protocol.errors import ConfigError
from fl_protocol.run_config import load_settings, to_run_config
from fl_protocol.settings import RunSettings
from fl_server.server_app import run_federation
from tests.support.inprocess_grid import InProcessGrid


def federate(tmp_path: Path, *overrides: str) -> tuple[object, list[dict]]:
    settings: RunSettings = load_settings(
        ["federation.num_rounds=4", f"output_dir={tmp_path}", "tracking.enabled=false", *overrides]
    )
    nodes = {10 + i: {"partition-id": i, "num-partitions": 4} for i in range(4)}
    summary = run_federation(InProcessGrid(client_app, nodes, to_run_config(settings)), settings, flower_run_id=1)
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


def test_central_dp_with_little_noise_still_learns(tmp_path: Path) -> None:
    _, rounds = federate(
        # Weights near 1 (max_weight ~ node size) keep the noise small next to the summed update.
        tmp_path, "privacy=central", "privacy.noise_multiplier=0.001", "privacy.clip_norm=5",
        "privacy.epsilon_budget=1e12", "secure.secagg.max_weight=400",
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
    assert failed and all("epsilon" in reason for r in failed for reason in r["node_failures"].values())
