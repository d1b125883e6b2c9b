"""The local history file: the run's record that survives any tracking outage."""

import math
from pathlib import Path

from fl_server.round_record import RoundRecord
from fl_server.tracking import read_history, write_history


def test_history_reads_back_as_written(tmp_path: Path) -> None:
    history = [
        RoundRecord(round=0, central_eval={"eval-accuracy": 0.1}),
        RoundRecord(
            round=1,
            seconds=2.5,
            train_metrics={"train-loss": 0.7},
            federated_eval={"eval-accuracy": 0.4},
            node_metrics={"node-0": {"train-loss": 0.6}},
            bytes_received=1024,
            nodes_sampled=2,
            nodes_replied=1,
            node_failures={"node-1": "timed out"},
            node_train_seconds=1.5,
        ),
    ]
    path = tmp_path / "nested" / "history.json"

    write_history(history, path)

    assert read_history(path) == history


def test_a_diverged_loss_survives_the_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "history.json"

    write_history([RoundRecord(round=1, train_metrics={"train-loss": math.nan})], path)

    assert math.isnan(read_history(path)[0].train_metrics["train-loss"])


def test_rewriting_replaces_the_history_and_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    write_history([RoundRecord(round=0)], path)

    write_history([RoundRecord(round=0), RoundRecord(round=1)], path)

    assert [record.round for record in read_history(path)] == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]
