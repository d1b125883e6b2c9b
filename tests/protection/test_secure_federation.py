"""Whole federations under secure aggregation, with the real ClientApp (fast in-process path)."""

import json
from pathlib import Path

import pytest
from flwr.app import Message, RecordDict

from cli.flower_app import central_test_set
from cli.simulation.kits import provision_simulated_kits
from fedtriage.errors import FederationFailed
from fl_client import client_app as node_app
from fl_client.client_app import app as client_app
from fl_protocol.protection import messages
from fl_protocol.records import EVAL_ACCURACY
from fl_protocol.run_config import load_settings, node_run_config
from fl_protocol.settings import RunSettings
from fl_server.server_app import run_federation
from tests.support.inprocess_grid import InProcessGrid, federate_in_process, simulated_nodes


def settings_for(tmp_path: Path, name: str, *overrides: str) -> RunSettings:
    return load_settings(
        [
            "federation.num_rounds=4",
            "federation.node_wait_timeout_s=1",
            "federation.round_timeout_s=1",
            f"output_dir={tmp_path / name}",
            "tracking.enabled=false",
            *overrides,
        ]
    )


def federate(settings: RunSettings, drop=None, tamper=None):  # type: ignore[no-untyped-def]
    return federate_in_process(settings, drop=drop, tamper=tamper)


def history(summary) -> list[dict]:  # type: ignore[no-untyped-def]
    return json.loads((Path(summary.output_dir) / "history.json").read_text())


def test_secagg_reaches_the_accuracy_of_plaintext_on_the_same_seed(tmp_path: Path) -> None:
    plain, _ = federate(settings_for(tmp_path, "plain", "secure=plaintext"))
    secure, _ = federate(settings_for(tmp_path, "secure", "secure=secagg"))
    difference = secure.final_metrics["central/eval-accuracy"] - plain.final_metrics["central/eval-accuracy"]
    assert abs(difference) <= 0.01


def test_fedadam_applies_its_update_rule_to_the_secure_mean(tmp_path: Path) -> None:
    summary, _ = federate(settings_for(tmp_path, "adam", "strategy=fedadam", "strategy.params.eta=0.05"))
    rounds = history(summary)
    assert rounds[-1]["central_eval"]["eval-accuracy"] > rounds[0]["central_eval"]["eval-accuracy"] + 0.2


def test_a_secure_round_reports_sums_and_protocol_figures_but_nothing_per_node(tmp_path: Path) -> None:
    summary, grid = federate(settings_for(tmp_path, "view", "federation.num_rounds=2"))
    rounds = history(summary)
    for record in rounds[1:]:
        assert record["node_metrics"] == {}
        assert record["protocol_metrics"]["secagg-used"] == 4
        assert record["protocol_metrics"]["bytes-per-node-max"] > 0
        assert {"secagg-masked-seconds", "secagg-unmask-seconds"} <= set(record["protocol_metrics"])
    # Round 1 shares its keys on its own; round 2's were shared with round 1's unmasking.
    assert "secagg-share-keys-seconds" in rounds[1]["protocol_metrics"]
    assert "secagg-share-keys-seconds" not in rounds[2]["protocol_metrics"]
    assert rounds[2]["protocol_metrics"]["secagg-keys-shared-ahead"] == 1
    # Federated evaluation arrives with the next round (and a final session) for every model.
    assert all(EVAL_ACCURACY in record["federated_eval"] for record in rounds)
    # The server never received a metric record or a holdings report from any node.
    assert not any(reply.content.metric_records for reply in grid.received if reply.has_content())
    assert not any("holdings-report" in reply.content for reply in grid.received if reply.has_content())


class DropOnce:
    """Nodes that vanish at one stage, the first time it comes round."""

    def __init__(self, nodes: set[int], message_type: str) -> None:
        self.pending = set(nodes)
        self.message_type = message_type

    def __call__(self, node_id: int, message: Message) -> bool:
        if node_id in self.pending and message.metadata.message_type == self.message_type:
            self.pending.discard(node_id)
            return True
        return False


def test_a_node_dropping_mid_round_leaves_the_round_to_the_survivors(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "drop", "federation.num_rounds=2")
    summary, _ = federate(settings, drop=DropOnce({11}, messages.SECAGG_TRAIN))
    rounds = history(summary)
    assert rounds[1]["protocol_metrics"]["secagg-used"] == 3
    assert rounds[1]["protocol_metrics"]["secagg-dropped-at-masked"] == 1
    assert summary.rounds_completed == 2


def test_a_node_the_superlink_lost_is_counted_once_under_its_own_name(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "lost", "federation.num_rounds=2")
    summary, _ = federate_in_process(settings, lost=DropOnce({11}, messages.SECAGG_TRAIN))
    lost_round = history(summary)[1]
    assert lost_round["protocol_metrics"]["secagg-used"] == 3
    assert list(lost_round["node_failures"]) == ["node-1"]
    assert "secagg-masked" in lost_round["node_failures"]["node-1"]
    assert summary.rounds_completed == 2


def test_too_many_dropouts_fail_the_round_loudly_and_keep_the_model(tmp_path: Path) -> None:
    # 4 nodes: t = 3 of 4 share holders, so two nodes gone at unmasking is one too many.
    settings = settings_for(tmp_path, "fail", "federation.num_rounds=2", "federation.max_consecutive_failed_rounds=2")
    summary, _ = federate(settings, drop=DropOnce({10, 11}, messages.SECAGG_UNMASK))
    rounds = history(summary)
    failed = next(record for record in rounds if record["round"] == 1)
    assert failed["train_metrics"] == {}  # round 1 left no model behind
    assert summary.rounds_completed == 2
    # Two nodes never answered round 1's unmasking, so round 2's keys could not ride on it.
    retried = next(record for record in rounds if record["round"] == 2)
    assert "secagg-keys-shared-ahead" not in retried["protocol_metrics"]
    assert "secagg-share-keys-seconds" in retried["protocol_metrics"]


def test_keys_are_shared_ahead_only_when_every_node_is_sampled_every_round(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "sampled", "federation.num_rounds=3", "federation.num_nodes=5",
                            "federation.fraction_train=0.8", "federation.min_available_nodes=5")
    summary, grid = federate(settings)
    assert summary.rounds_completed == 3
    assert all("secagg-share-keys-seconds" in record["protocol_metrics"] for record in history(summary)[1:])
    unmasking = [m for m in grid.delivered if m.metadata.message_type == messages.SECAGG_UNMASK]
    assert unmasking and not any(messages.ROUND_RECORD in m.content for m in unmasking)


def test_every_round_failing_stops_the_run_with_the_reason(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "dead", "federation.max_consecutive_failed_rounds=2")
    with pytest.raises(FederationFailed, match="shares needed"):
        federate(settings, drop=lambda node_id, message: node_id in (10, 11)
                 and message.metadata.message_type == messages.SECAGG_UNMASK)


def test_a_node_that_restarts_and_loses_its_keys_rejoins_after_a_new_setup(tmp_path: Path) -> None:
    settings = provision_simulated_kits(settings_for(tmp_path, "restart", "federation.num_rounds=3"))
    rounds_seen_by_node_12: list[Message] = []

    def node_12_restarts_before_its_second_round(node_id: int, message: Message) -> bool:
        # Round 2's keys were shared ahead, with round 1's unmasking: it restarts before training.
        if node_id == 12 and message.metadata.message_type == messages.SECAGG_TRAIN:
            rounds_seen_by_node_12.append(message)
            if len(rounds_seen_by_node_12) == 2:
                grid.contexts[12].state = RecordDict()  # restarted: its run keys are gone
        return False

    nodes = simulated_nodes(settings.federation.num_nodes)
    grid = InProcessGrid(client_app, nodes, node_run_config(settings), drop=node_12_restarts_before_its_second_round)
    rounds = history(run_federation(grid, settings, flower_run_id=1, central_test_set=central_test_set))
    assert rounds[2]["protocol_metrics"]["secagg-used"] == 3  # round 2 went on without it
    assert rounds[3]["protocol_metrics"]["secagg-used"] == 4  # set up again, back in round 3


def test_a_replayed_training_request_is_refused_before_the_node_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary, grid = federate(settings_for(tmp_path, "replay", "federation.num_rounds=1"))
    assert summary.status == "FINISHED"
    trained: list[int] = []
    real_train = node_app.LocalWork.train

    def counted(work):  # type: ignore[no-untyped-def]
        trained.append(1)
        return real_train(work)

    monkeypatch.setattr(node_app.LocalWork, "train", counted)
    replayed = next(m for m in grid.delivered if m.metadata.message_type == messages.SECAGG_TRAIN)
    reply = client_app(replayed, grid.contexts[replayed.metadata.dst_node_id])
    assert reply.has_error() and reply.error.reason == "refused: protocol: this node holds no secrets for that round"
    assert trained == []  # refused before holdings, model or training were touched
