"""A node's DP-SGD ledger: one owner-only file per federation and node in its kit, and no kit, no DP-SGD."""

import dataclasses
import json
import stat
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fedtriage.errors import FederationFailed
from fl_client.client_app import app
from fl_client.kit import SIMULATED_KITS_VARIABLE, NodeKit, node_kit
from fl_client.protection.local_dp import train_with_dpsgd
from fl_client.protection.privacy_ledger import LedgerUnreadable, NodePrivacyLedger, epsilon_of
from fl_protocol.run_config import load_settings, node_run_config
from fl_server.server_app import run_federation
from tests.support.inprocess_grid import InProcessGrid, simulated_nodes
from tests.support.kits import provision_nodes

SETTINGS = load_settings(["privacy=local_dpsgd", "privacy.epsilon_budget=1e9", "train.batch_size=10"])
DATASET = TensorDataset(torch.randn(40, 4), torch.randint(0, 2, (40,)))


@pytest.fixture
def kit(tmp_path: Path) -> NodeKit:
    _, configs = provision_nodes(tmp_path, [1])
    return node_kit(configs[1])


def train(kit: NodeKit) -> float | None:
    return train_with_dpsgd(nn.Linear(4, 2), DATASET, SETTINGS.train, SETTINGS.privacy, 0, kit).epsilon


def test_the_ledger_is_an_owner_only_file_in_the_kits_state_folder_named_for_federation_and_node(kit: NodeKit) -> None:
    epsilon = train(kit)
    ledger = NodePrivacyLedger(kit)
    assert ledger.path.parent == kit.state_dir
    assert "test-federation" in ledger.path.name and kit.name in ledger.path.name
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600
    document = json.loads(ledger.path.read_text())
    assert (document["federation"], document["node"]) == ("test-federation", kit.name)
    assert epsilon == pytest.approx(ledger.epsilon(SETTINGS.privacy.delta))
    assert not [p for p in kit.state_dir.iterdir() if p.name.endswith(".partial")]  # written by rename


def test_each_training_adds_to_the_ledger_and_the_epsilon_it_reports(kit: NodeKit) -> None:
    first, second = train(kit), train(kit)
    entries = NodePrivacyLedger(kit).entries()
    assert len(entries) == 2 and entries[0] == entries[1]
    assert first == pytest.approx(epsilon_of(entries[:1], SETTINGS.privacy.delta))
    assert second == pytest.approx(epsilon_of(entries, SETTINGS.privacy.delta)) and second > first  # type: ignore[operator]


def test_the_same_kit_in_another_federation_starts_its_own_ledger_and_leaves_the_first_alone(kit: NodeKit) -> None:
    first = train(kit)
    train(kit)
    spent = NodePrivacyLedger(kit).epsilon(SETTINGS.privacy.delta)
    elsewhere = dataclasses.replace(kit, roster=dataclasses.replace(kit.roster, federation="another-federation"))
    assert train(elsewhere) == pytest.approx(first)
    assert NodePrivacyLedger(elsewhere).path != NodePrivacyLedger(kit).path
    assert NodePrivacyLedger(kit).epsilon(SETTINGS.privacy.delta) == spent


def test_a_ledger_of_another_node_is_unusable_not_adopted(kit: NodeKit) -> None:
    train(kit)
    ledger = NodePrivacyLedger(kit)
    document = json.loads(ledger.path.read_text())
    ledger.path.write_text(json.dumps({**document, "node": "node-9"}))
    with pytest.raises(LedgerUnreadable, match="node-9"):
        train(kit)


def test_a_local_dp_node_without_a_kit_trains_nothing_and_names_the_kit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A deployed node started without --node-config kit=...: nowhere to keep its budget.
    monkeypatch.delenv(SIMULATED_KITS_VARIABLE, raising=False)
    settings = load_settings([
        "secure=plaintext", "privacy=local_dpsgd", "federation.num_rounds=1",
        "federation.max_consecutive_failed_rounds=1", "evaluation.central=false", "tracking.enabled=false",
        f"output_dir={tmp_path}",
    ])
    grid = InProcessGrid(app, simulated_nodes(4), node_run_config(settings))
    with pytest.raises(FederationFailed, match="train: failed: setting kit"):
        run_federation(grid, settings, flower_run_id=1)
    # The coordinator learns the setting; the node's operator reads how to fix it.
    assert "kit: this node has no kit" in caplog.text
