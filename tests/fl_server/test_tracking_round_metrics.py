"""How a round's results are named in MLflow."""

from fl_server.round_record import RoundRecord
from fl_server.tracking.round_metrics import holdings_metrics, round_metrics


def test_round_zero_holds_only_the_initial_central_evaluation() -> None:
    record = RoundRecord(round=0, central_eval={"eval-accuracy": 0.1, "eval-loss": 2.3})

    assert round_metrics(record) == {"central/eval-accuracy": 0.1, "central/eval-loss": 2.3}


def test_a_round_is_grouped_by_source_with_its_counters() -> None:
    record = RoundRecord(
        round=2,
        seconds=3.0,
        train_metrics={"train-loss": 0.5},
        federated_eval={"eval-accuracy": 0.7},
        central_eval={"eval-accuracy": 0.75},
        node_metrics={"node-0": {"train-loss": 0.4}},
        bytes_received=2048,
        nodes_sampled=3,
        nodes_replied=2,
        node_failures={"node-2": "timed out"},
        node_train_seconds=2.0,
    )

    assert round_metrics(record) == {
        "train/train-loss": 0.5,
        "federated/eval-accuracy": 0.7,
        "central/eval-accuracy": 0.75,
        "node/node-0/train-loss": 0.4,
        "round/seconds": 3.0,
        "round/bytes_received": 2048.0,
        "round/nodes_sampled": 3.0,
        "round/nodes_replied": 2.0,
        "round/node_failures": 1.0,
        "round/node_train_seconds": 2.0,
    }


def test_node_labels_are_made_safe_without_merging_nodes() -> None:
    record = RoundRecord(
        round=1,
        node_metrics={"Paris/Unit:2": {"train-loss": 0.1}, "Paris_Unit_2": {"train-loss": 0.2}, "..": {"x": 1.0}},
    )

    node_metrics = {k: v for k, v in round_metrics(record).items() if k.startswith("node/")}

    assert node_metrics == {
        "node/Paris_Unit_2/train-loss": 0.1,
        "node/Paris_Unit_2/train-loss_2": 0.2,
        "node/_/x": 1.0,
    }


def test_holdings_counts_become_metrics_and_text_stays_out() -> None:
    reports = {"node-0": {"source": "folder /data", "loaded": 120, "skipped": 3, "skipped.corrupt": 3}}

    assert holdings_metrics(reports) == {
        "holdings/node-0/loaded": 120.0,
        "holdings/node-0/skipped": 3.0,
        "holdings/node-0/skipped.corrupt": 3.0,
    }
