"""The server's round loop against the real ClientApp, delivered in-process (fast path)."""

import dataclasses
import tempfile
from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord, Message

from cli.flower_app import central_test_set
from cli.simulation.kits import provision_simulated_kits
from fl_client.client_app import app as client_app
from fl_client.holdings import central_test_holdings, write_synthetic_holdings
from fl_protocol.protection import messages
from fl_protocol.run_config import load_settings, node_run_config
from fl_protocol.settings import RunSettings
from fl_server.central_evaluation import CentralEvaluator
from fl_server.federation_rounds import FederationFailed, FederationRounds
from fl_server.protection import build_update_aggregation
from fl_server.round_record import RoundRecord
from fl_server.strategy_factory import build_strategy
from models import build_model
from tests.support.inprocess_grid import InProcessGrid
from tests.support.kits import SMALL_FEDERATION, provision_nodes

_SCRATCH = tempfile.TemporaryDirectory(prefix="fedtriage-test-rounds-")


class Recorder:
    """A round listener that keeps everything it is told."""

    def __init__(self) -> None:
        self.finished: list[RoundRecord] = []
        self.failed: list[tuple[RoundRecord, str]] = []
        self.reports: dict[str, dict[str, int | str]] = {}
        self.late_evaluations: list[int] = []

    def holdings_reported(self, reports: dict[str, dict[str, int | str]]) -> None:
        assert not set(reports) & set(self.reports), "a node reports its holdings once"
        self.reports.update(reports)

    def round_finished(self, record: RoundRecord, arrays: ArrayRecord) -> None:
        self.finished.append(record)

    def round_failed(self, record: RoundRecord, reason: str) -> None:
        self.failed.append((record, reason))

    def federated_evaluation(self, record: RoundRecord) -> None:
        self.late_evaluations.append(record.round)


def small_federation(*overrides: str) -> RunSettings:
    """3 nodes; secure ones with the kits a simulation provisions (in a folder of their own)."""
    settings = load_settings(
        [
            "secure=plaintext",
            "federation.num_nodes=3",
            "federation.num_rounds=3",
            "federation.node_wait_timeout_s=1",
            "federation.round_timeout_s=1",
            *SMALL_FEDERATION,
            *overrides,
        ]
    )
    return provision_simulated_kits(dataclasses.replace(settings, output_dir=tempfile.mkdtemp(dir=_SCRATCH.name)))


def simulated_nodes(settings: RunSettings) -> dict[int, dict[str, bool | int | float | str]]:
    count = settings.federation.num_nodes
    return {100 + i: {"partition-id": i, "num-partitions": count} for i in range(count)}


def run_rounds(settings: RunSettings, grid: InProcessGrid, listener: Recorder) -> tuple[FederationRounds, ArrayRecord]:
    rounds = FederationRounds(
        grid=grid,
        strategy=build_strategy(settings),
        aggregation=build_update_aggregation(settings),
        federation=settings.federation,
        listener=listener,
        central_evaluation=CentralEvaluator(settings, central_test_set(settings)),
    )
    torch.manual_seed(settings.seed)
    model = build_model(settings.model, num_classes=10, in_channels=1, image_size=8)
    start = ArrayRecord(model.state_dict())
    outcome = rounds.run(start)
    return rounds, outcome.arrays


def test_rounds_train_every_node_and_improve_the_global_model() -> None:
    settings = small_federation()
    grid = InProcessGrid(client_app, simulated_nodes(settings), node_run_config(settings))
    recorder = Recorder()
    rounds, _ = run_rounds(settings, grid, recorder)

    assert [record.round for record in rounds.history] == [0, 1, 2, 3]
    assert rounds.history[-1].central_eval["eval-accuracy"] > rounds.history[0].central_eval["eval-accuracy"] + 0.2
    last = rounds.history[-1]
    assert set(last.node_metrics) == {"node-0", "node-1", "node-2"}
    assert last.nodes_replied == last.nodes_sampled == 3
    assert last.train_metrics["train-loss"] > 0 and 0 < last.federated_eval["eval-accuracy"] <= 1
    assert last.bytes_received > 4 * 56_554  # float32 weights of every node, at least
    assert last.node_train_seconds > 0
    assert set(recorder.reports) == {"node-0", "node-1", "node-2"}
    held_out = len(central_test_holdings(settings))
    assert sum(int(r["loaded"]) for r in recorder.reports.values()) == 1797 - held_out


def test_same_configuration_and_seed_give_the_same_metrics() -> None:
    settings = small_federation("federation.num_rounds=2", "partition=dirichlet")
    histories = []
    for _ in range(2):
        grid = InProcessGrid(client_app, simulated_nodes(settings), node_run_config(settings))
        rounds, _ = run_rounds(settings, grid, Recorder())
        histories.append([(r.train_metrics, r.federated_eval, r.central_eval) for r in rounds.history])
    assert histories[0] == histories[1]


def test_a_node_that_fails_is_named_with_its_error_and_the_round_goes_on(tmp_path: Path) -> None:
    settings = small_federation("federation.num_rounds=1")
    nodes = simulated_nodes(settings)
    nodes[999] = {"holdings-path": str(tmp_path / "missing"), "node-name": "unit-x"}
    grid = InProcessGrid(client_app, nodes, node_run_config(settings))
    settings = dataclasses.replace(
        settings, federation=dataclasses.replace(settings.federation, min_available_nodes=4)
    )
    rounds, _ = run_rounds(settings, grid, Recorder())
    record = rounds.history[-1]
    assert record.nodes_replied == 3 and record.nodes_sampled == 4
    (label, reason), = record.node_failures.items()
    assert reason == "train: refused: policy no-kit"  # a node started without its kit has no policy: it refuses
    assert record.train_metrics  # the three healthy nodes still produced a new model


def test_too_few_updates_fail_the_round_loudly_and_keep_the_model() -> None:
    settings = small_federation("federation.min_train_nodes=3", "federation.max_consecutive_failed_rounds=2")
    dropped_once = {"done": False}

    def drop_node_101_in_round_1(node_id: int, message: Message) -> bool:
        if node_id == 101 and message.metadata.message_type == "train" and not dropped_once["done"]:
            dropped_once["done"] = True
            return True
        return False

    grid = InProcessGrid(
        client_app, simulated_nodes(settings), node_run_config(settings), drop=drop_node_101_in_round_1
    )
    recorder = Recorder()
    rounds, _ = run_rounds(settings, grid, recorder)

    (failed, reason), = recorder.failed
    assert failed.round == 1
    assert "only 2 of 3" in reason and "federation.min_train_nodes=3" in reason
    assert "no reply" in failed.node_failures["node-id-101"]  # no label yet: it never replied
    assert [r.round for r in recorder.finished] == [0, 2, 3]  # round 1 left no model behind


def test_consecutive_failed_rounds_stop_the_run_with_the_node_errors() -> None:
    settings = small_federation("federation.min_train_nodes=3", "federation.max_consecutive_failed_rounds=2")
    grid = InProcessGrid(
        client_app, simulated_nodes(settings), node_run_config(settings),
        drop=lambda node_id, message: node_id == 102,
    )
    with pytest.raises(FederationFailed, match="2 consecutive rounds failed"):
        run_rounds(settings, grid, Recorder())


def test_nodes_evaluation_of_the_model_they_received_lands_on_the_round_that_made_it() -> None:
    # Secure modes evaluate the received model while training the next round. Round 2 fails,
    # so the nodes of round 3 evaluate round 1's model.
    settings = small_federation("secure=secagg")
    recorder = Recorder()

    def unmasking_fails_in_round_2(node_id: int, message: Message) -> bool:
        in_round_2 = recorder.finished[-1].round == 1 and not recorder.failed
        return in_round_2 and node_id != 100 and message.metadata.message_type == messages.SECAGG_UNMASK

    grid = InProcessGrid(
        client_app, simulated_nodes(settings), node_run_config(settings), drop=unmasking_fails_in_round_2
    )
    rounds, _ = run_rounds(settings, grid, recorder)

    assert [record.round for record, _ in recorder.failed] == [2]
    assert recorder.late_evaluations == [0, 1, 3]  # round 3's evaluation belongs to round 1
    assert rounds.history[1].federated_eval and not rounds.history[2].federated_eval


def test_nodes_gone_after_the_last_round_cost_its_evaluation_not_the_run(caplog: pytest.LogCaptureFixture) -> None:
    # Every node must be connected (3): one leaving after the last round is one too few.
    settings = small_federation("secure=secagg", "federation.num_rounds=2", "federation.node_wait_timeout_s=0.3",
                                "federation.min_available_nodes=3")
    grid = InProcessGrid(client_app, simulated_nodes(settings), node_run_config(settings))

    class NodeLeavesAfterTraining(Recorder):
        def round_finished(self, record: RoundRecord, arrays: ArrayRecord) -> None:
            super().round_finished(record, arrays)
            if record.round == 2:
                del grid.contexts[102]

    recorder = NodeLeavesAfterTraining()
    rounds, _ = run_rounds(settings, grid, recorder)

    assert [record.round for record in recorder.finished] == [0, 1, 2]
    assert not rounds.history[2].federated_eval
    assert "federated evaluation after round 2 skipped" in caplog.text


def test_waiting_for_nodes_ends_after_the_timeout_with_a_clear_error() -> None:
    settings = small_federation("federation.min_available_nodes=5", "federation.node_wait_timeout_s=0.5")
    grid = InProcessGrid(client_app, simulated_nodes(settings), node_run_config(settings))
    with pytest.raises(FederationFailed, match=r"only 3 of federation.min_available_nodes=5 nodes connected"):
        run_rounds(settings, grid, Recorder())


@pytest.mark.parametrize("classes", [["disc", "square", "triangle", "cross"], ["disc", "cross"]])
def test_units_with_their_own_holdings_folders_train_together(tmp_path: Path, classes: list[str]) -> None:
    # Deployment shape: each node reads its own folder from its node config.
    _, nodes = provision_nodes(tmp_path / "kits", [200, 201], {"protection": {"modes": ["plaintext"]}})
    for index, unit in enumerate(["unit-a", "unit-b"]):
        write_synthetic_holdings(tmp_path / unit, classes, 12, image_size=16, image_format="mixed", seed=index)
        nodes[200 + index].update({"holdings-path": str(tmp_path / unit), "node-name": unit})
    settings = load_settings(
        [
            "holdings=folder", f"holdings.path={tmp_path / 'unit-a'}", f"holdings.classes=[{','.join(classes)}]",
            "holdings.image_size=16", "federation.num_nodes=2", "federation.num_rounds=2", "secure=plaintext",
            "evaluation.central=false",
        ]
    )
    grid = InProcessGrid(client_app, nodes, node_run_config(settings))
    rounds = FederationRounds(
        grid=grid,
        strategy=build_strategy(settings),
        aggregation=build_update_aggregation(settings),
        federation=settings.federation,
        listener=(recorder := Recorder()),
    )
    model = build_model(settings.model, num_classes=len(classes), in_channels=3, image_size=16)
    rounds.run(ArrayRecord(model.state_dict()))

    last = rounds.history[-1]
    assert set(last.node_metrics) == {"unit-a", "unit-b"}
    loaded = 12 * len(classes)
    assert {label: report["loaded"] for label, report in recorder.reports.items()} == {
        "unit-a": loaded,
        "unit-b": loaded,
    }
    assert ("eval-roc-auc" in last.federated_eval) == (len(classes) == 2)  # ROC-AUC for two classes
    assert not any(str(tmp_path) in str(value) for report in recorder.reports.values() for value in report.values())
