"""A unit's policy against the coordinator's run config, through the real ClientApp: outside policy is refused,
the coordinator learns the rule and nothing else, and the node goes on."""

from pathlib import Path

import pytest

from fedtriage.errors import FederationFailed
from fl_client.client_app import app
from fl_client.holdings import write_synthetic_holdings
from fl_client.kit import KIT_KEY
from fl_client.node_holdings import HOLDINGS_PATH_KEY
from fl_protocol import records
from fl_protocol.run_config import load_settings, node_run_config
from fl_protocol.settings import RunSettings
from fl_server.server_app import run_federation
from tests.support.inprocess_grid import InProcessGrid
from tests.support.kits import provision_nodes

NODES = [1, 2, 3]
# The settings every run below shares: a small plaintext-or-secure run without central evaluation.
CLASSES = ["disc", "square"]
COMMON = ["federation.num_nodes=3", "federation.min_train_nodes=3", "federation.num_rounds=1",
          "federation.max_consecutive_failed_rounds=1", "evaluation.central=false", "tracking.enabled=false",
          "holdings=folder", f"holdings.classes=[{','.join(CLASSES)}]", "train.batch_size=8"]


def _refusals(tmp_path: Path, policy: dict[str, object], overrides: list[str]) -> list[str]:
    """The error reasons the server received when every node holds `policy` and the run asks `overrides`."""
    grid, settings = _federation(tmp_path, policy, overrides)
    with pytest.raises(FederationFailed):
        run_federation(grid, settings, flower_run_id=1)
    assert not [reply for reply in grid.received if reply.has_content() and records.ARRAYS_KEY in reply.content]
    return sorted({reply.error.reason for reply in grid.received if reply.has_error()})


def _federation(tmp_path: Path, policy: dict[str, object], overrides: list[str]) -> tuple[InProcessGrid, RunSettings]:
    """Nodes holding `policy` (kits provisioned once per folder) and a run that asks `overrides`."""
    kits = tmp_path / "kits"
    if not kits.exists():
        provision_nodes(kits, NODES, policy)
        for index in range(len(NODES)):
            write_synthetic_holdings(tmp_path / f"holdings-{index}", CLASSES, 8, 32, "png", seed=index)
    configs = {node: {KIT_KEY: str(kits / f"node-{index}"), HOLDINGS_PATH_KEY: str(tmp_path / f"holdings-{index}")}
               for index, node in enumerate(NODES)}
    settings = load_settings([*COMMON, f"output_dir={tmp_path / 'out'}", f"kit={kits / 'coordinator'}", *overrides])
    return InProcessGrid(app, configs, node_run_config(settings)), settings


def test_plaintext_asked_of_a_node_whose_policy_allows_secagg_only_is_refused(tmp_path: Path) -> None:
    refusals = _refusals(tmp_path, {"protection": {"modes": ["secagg"]}}, ["secure=plaintext", "privacy=none"])
    assert refusals == ["refused: policy protection-mode"]


def test_weaker_differential_privacy_than_the_policy_is_refused(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}, "privacy": {"required": True, "min_noise_multiplier": 1.0}}
    assert _refusals(tmp_path, policy, ["secure=plaintext", "privacy=none"]) == ["refused: policy privacy-required"]
    assert _refusals(tmp_path / "again", policy, ["secure=plaintext", "privacy=local_dpsgd",
                                                  "privacy.noise_multiplier=0.5"]) == ["refused: policy privacy-noise"]


def test_training_outside_the_policys_ranges_is_refused(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}, "training": {"max_local_epochs": 2, "models": ["cnn"]}}
    assert _refusals(tmp_path, policy, ["secure=plaintext", "train.local_epochs=5"]) == [
        "refused: policy training-epochs"]
    assert _refusals(tmp_path / "again", policy, ["secure=plaintext", "model=resnet18"]) == [
        "refused: policy training-model"]


def test_a_refusal_carries_no_local_path_or_count_and_the_node_goes_on(tmp_path: Path) -> None:
    policy = {"protection": {"modes": ["plaintext"]}}
    refusals = _refusals(tmp_path, policy, ["secure=secagg"])
    assert refusals == ["refused: policy protection-mode"]
    assert not any(str(tmp_path) in reason or any(ch.isdigit() for ch in reason) for reason in refusals)
    # The same nodes (same kits) take the next run their policy allows.
    grid, settings = _federation(tmp_path, policy, ["secure=plaintext"])
    summary = run_federation(grid, settings, flower_run_id=2)
    assert summary.rounds_completed == 1
    assert not [reply for reply in grid.received if reply.has_error()]
