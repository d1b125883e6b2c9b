"""Privacy accounting that an interruption, a new run or an empty batch cannot reset or dodge.

Each test replays a finding of the security review: a resumed central-DP run restarting its
epsilon at 0; a node's DP-SGD budget handed out afresh to every new run of its federation; a
corrupt ledger read as an empty one; an empty Poisson batch skipped without its noise.
"""

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
from torch.utils.data import TensorDataset

from cli.simulation.preflight import preflight
from fedtriage.errors import ConfigError
from fl_client.kit import node_kit
from fl_client.protection.local_dp import train_with_dpsgd
from fl_client.protection.privacy_ledger import LedgerUnreadable, NodePrivacyLedger
from fl_protocol.run_config import load_settings
from fl_server.checkpoint import load_checkpoint, save_checkpoint
from fl_server.run_summary import RunSummary
from tests.support.inprocess_grid import federate_in_process
from tests.support.kits import provision_nodes

pytestmark = pytest.mark.attack

# Budget 10 at noise 1.0 over 4 nodes all sampled: rounds 1-3 fit (epsilon 4.73, 7.08, 9.01), round 4 would not.
CENTRAL = ("privacy=central", "privacy.noise_multiplier=1.0", "privacy.epsilon_budget=10", "tracking.enabled=false")
LOCAL = ("secure=plaintext", "privacy=local_dpsgd", "privacy.noise_multiplier=1.0", "tracking.enabled=false")


def federate(output_dir: Path, *overrides: str) -> tuple[RunSummary, list[dict[str, Any]]]:
    summary, _ = federate_in_process(load_settings([f"output_dir={output_dir}", *overrides]))
    return summary, json.loads((output_dir / "history.json").read_text())


def central_epsilons(rounds: list[dict[str, Any]]) -> dict[int, float]:
    return {r["round"]: r["protocol_metrics"]["dp-epsilon"] for r in rounds if "dp-epsilon" in r["protocol_metrics"]}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, list[dict[str, Any]], Path]:
    """A central-DP run that nothing interrupts: it stops at its budget, before round 4."""
    output_dir = tmp_path_factory.mktemp("uninterrupted")
    summary, rounds = federate(output_dir, *CENTRAL, "federation.num_rounds=6")
    return summary, rounds, output_dir


def test_a_resumed_central_dp_run_goes_on_from_the_epsilon_spent_and_stops_at_the_same_budget(
    tmp_path: Path, uninterrupted: tuple[RunSummary, list[dict[str, Any]], Path]
) -> None:
    whole, whole_rounds, _ = uninterrupted
    assert whole.rounds_completed == 3 and "privacy.epsilon_budget=10" in str(whole.stopped_early)
    federate(tmp_path / "cut", *CENTRAL, "federation.num_rounds=2")  # stopped after round 2
    resumed, resumed_rounds = federate(
        tmp_path / "resumed", *CENTRAL, "federation.num_rounds=6",
        f"checkpoint.resume_from={tmp_path / 'cut' / 'checkpoints' / 'round_0002.pt'}",
    )
    expected = central_epsilons(whole_rounds)
    assert central_epsilons(resumed_rounds) == pytest.approx(expected, abs=1e-6)
    assert resumed.rounds_completed == 3
    assert "privacy.epsilon_budget=10" in str(resumed.stopped_early)


def test_resuming_a_central_dp_run_that_spent_its_budget_trains_no_further_round(
    tmp_path: Path, uninterrupted: tuple[RunSummary, list[dict[str, Any]], Path]
) -> None:
    # The reported attack: resumed after round 3, the run reported 4.73, 7.08, 9.01 for rounds 4-6.
    _, whole_rounds, whole_dir = uninterrupted
    resumed, resumed_rounds = federate(
        tmp_path, *CENTRAL, "federation.num_rounds=6",
        f"checkpoint.resume_from={whole_dir / 'checkpoints' / 'round_0003.pt'}",
    )
    assert resumed.rounds_completed == 3
    assert "privacy.epsilon_budget=10" in str(resumed.stopped_early)
    assert central_epsilons(resumed_rounds) == pytest.approx(central_epsilons(whole_rounds), abs=1e-6)


def test_a_central_dp_run_refuses_to_resume_from_a_checkpoint_without_a_ledger(
    tmp_path: Path, uninterrupted: tuple[RunSummary, list[dict[str, Any]], Path]
) -> None:
    # As written before ledgers were checkpointed (or by a run without central DP).
    _, _, whole_dir = uninterrupted
    checkpoint = load_checkpoint(whole_dir / "checkpoints" / "round_0003.pt")
    old = save_checkpoint(tmp_path / "old", dataclasses.replace(checkpoint, privacy_ledger=None), keep_last=1)
    overrides = [*CENTRAL, "federation.num_rounds=6", f"checkpoint.resume_from={old}", f"output_dir={tmp_path}"]
    for start in (preflight, federate_in_process):  # `fedtriage simulate` checks first; the server checks too
        with pytest.raises(ConfigError, match="privacy ledger") as refused:
            start(load_settings(overrides))  # type: ignore[operator]
        assert refused.value.key == "checkpoint.resume_from"
    assert not (tmp_path / "checkpoints").exists()  # no round ran


def test_a_new_run_of_the_same_federation_continues_each_nodes_dpsgd_budget(tmp_path: Path) -> None:
    def node_epsilons(rounds: list[dict[str, Any]], round_: int) -> dict[str, float]:
        (record,) = [r for r in rounds if r["round"] == round_]
        return {node: metrics["local-epsilon"] for node, metrics in record["node_metrics"].items()}

    _, reference = federate(tmp_path / "reference", *LOCAL, "federation.num_rounds=4")  # its own kits
    third, fourth = node_epsilons(reference, 3), node_epsilons(reference, 4)
    assert len(third) == 4 and max(third.values()) < min(fourth.values())

    federation = tmp_path / "federation"  # its kits (and the nodes' ledgers) stay in federation/kits
    federate(federation, *LOCAL, "federation.num_rounds=2")
    # A new Flower run (a resumed one is one too): new Contexts, the same nodes and kits.
    budget = max(third.values()) * (1 + 1e-6)
    summary, rounds = federate(
        federation, *LOCAL, "federation.num_rounds=2", f"privacy.epsilon_budget={budget!r}",
    )
    assert node_epsilons(rounds, 1) == pytest.approx(third, abs=1e-6)  # the nodes' third training, not a first
    (refused,) = [r for r in rounds if r["round"] == 2]
    assert refused["train_metrics"] == {} and len(refused["node_failures"]) == 4
    assert all(reason.endswith("refused: privacy-budget") for reason in refused["node_failures"].values())
    assert summary.rounds_completed == 1


def test_a_corrupt_dpsgd_ledger_is_refused_never_read_as_a_fresh_budget(tmp_path: Path) -> None:
    settings = load_settings(["privacy=local_dpsgd", "privacy.epsilon_budget=1e9", "train.batch_size=10"])
    dataset = TensorDataset(torch.randn(40, 4), torch.randint(0, 2, (40,)))
    _, configs = provision_nodes(tmp_path, [1])
    kit = node_kit(configs[1])
    train_with_dpsgd(nn.Linear(4, 2), dataset, settings.train, settings.privacy, 0, kit)
    ledger = NodePrivacyLedger(kit)
    for damage in ("", "{not json", json.dumps({"format": "fedtriage-dpsgd-ledger-1", "entries": []})):
        ledger.path.write_text(damage)
        with pytest.raises(LedgerUnreadable, match=re.escape(str(ledger.path))):
            train_with_dpsgd(nn.Linear(4, 2), dataset, settings.train, settings.privacy, 0, kit)
        assert ledger.path.read_text() == damage  # left as found for its owner to restore


def test_an_empty_poisson_batch_still_takes_a_noisy_step_and_every_step_is_accounted(tmp_path: Path) -> None:
    # 4 examples in batches of 1: each of the 4 draws per epoch is empty with chance (3/4)^4.
    settings = load_settings(
        ["privacy=local_dpsgd", "privacy.epsilon_budget=1e9", "train.batch_size=1", "train.local_epochs=5"]
    )
    data = torch.Generator().manual_seed(0)
    dataset = TensorDataset(torch.randn(4, 4, generator=data), torch.randint(0, 2, (4,), generator=data))
    _, configs = provision_nodes(tmp_path, [1])
    kit = node_kit(configs[1])
    model = nn.Linear(4, 2)
    batch_sizes: list[int] = []
    before: list[torch.Tensor] = []
    steps: list[tuple[int, bool]] = []  # (batch size, parameters moved) per optimizer step

    def snapshot(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        before[:] = [p.detach().clone() for p in model.parameters()]

    def compare(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        moved = any(not torch.equal(old, new) for old, new in zip(before, model.parameters()))
        steps.append((batch_sizes[-1], moved))

    hooks = [
        model.register_forward_pre_hook(lambda module, inputs: batch_sizes.append(len(inputs[0]))),
        register_optimizer_step_pre_hook(snapshot),
        register_optimizer_step_post_hook(compare),
    ]
    try:
        result = train_with_dpsgd(model, dataset, settings.train, settings.privacy, seed=0, kit=kit)
    finally:
        for hook in hooks:
            hook.remove()
    assert any(size == 0 for size, _ in steps), "the seed should draw an empty batch"
    assert all(moved for _, moved in steps)  # the empty ones too: zero gradient plus the noise
    assert len(steps) == 5 * 4  # every draw is a step
    assert NodePrivacyLedger(kit).entries() == [(1.0, 0.25, len(steps))]
    assert result.loss == result.loss  # no NaN from an empty batch's loss
