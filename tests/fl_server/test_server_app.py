"""The ServerApp's run: tracked, checkpointed, resumable, and honest about failure."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from flwr.app import Message
from mlflow import MlflowClient
from PIL import Image
from sklearn.datasets import load_digits

from fedtriage.errors import FederationFailed, Interrupted
from fl_protocol.run_config import NODE_CONFIG_KEY, load_settings
from fl_protocol.settings import RunSettings
from fl_server.stop_request import clear_stop_request, request_stop
from models import load_model_file
from tests.support.inprocess_grid import federate_in_process


def settings_for(tmp_path: Path, name: str, *overrides: str) -> RunSettings:
    return load_settings(
        [
            "secure=plaintext",
            "federation.num_nodes=3",
            "federation.node_wait_timeout_s=1",
            f"output_dir={tmp_path / name}",
            f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            f"tracking.run_name={name}",
            "tracking.log_model=false",
            *overrides,
        ]
    )


def run(settings: RunSettings):  # type: ignore[no-untyped-def]
    return federate_in_process(settings)[0]


def test_simulated_nodes_are_given_only_their_part_of_the_settings(tmp_path: Path) -> None:
    summary, grid = federate_in_process(settings_for(tmp_path, "nodes", "federation.num_rounds=1"))
    assert summary.status == "FINISHED"
    assert {key for context in grid.contexts.values() for key in context.run_config} == {NODE_CONFIG_KEY}


def test_the_server_scores_each_round_on_the_test_set_it_is_handed(tmp_path: Path) -> None:
    # Every digit filed under the next digit's folder: only a server that scores on this very
    # folder finds a model that reads digits well to be almost always wrong.
    folder = tmp_path / "validation"
    digits = load_digits()
    for label in range(10):
        (folder / str((label + 1) % 10)).mkdir(parents=True, exist_ok=True)
        for index in np.flatnonzero(digits.target == label)[:3]:
            pixels = (digits.images[index] * 255 / 16).astype(np.uint8)
            Image.fromarray(pixels).save(folder / str((label + 1) % 10) / f"{index}.png")
    summary, _ = federate_in_process(
        settings_for(tmp_path, "own-test-set", "federation.num_rounds=3", f"evaluation.test_set={folder}")
    )
    assert summary.final_metrics["federated/eval-accuracy"] > 0.5  # the model reads digits
    assert summary.final_metrics["central/eval-accuracy"] < 0.2  # scored on the handed folder


def test_a_stop_request_ends_the_run_as_interrupted_and_keeps_what_was_recorded(tmp_path: Path) -> None:
    def stop_in_round_2(node_id: int, message: Message) -> bool:
        if int(message.content["config"]["server-round"]) == 2:
            request_stop()  # what Ctrl-C in `fedtriage simulate` does
        return False

    settings = settings_for(tmp_path, "stopped", "federation.num_rounds=5")
    try:
        with pytest.raises(Interrupted):
            federate_in_process(settings, drop=stop_in_round_2)
    finally:
        clear_stop_request()
    summary = json.loads((tmp_path / "stopped" / "summary.json").read_text())
    assert summary["status"] == "INTERRUPTED" and summary["rounds_completed"] == 1
    assert summary["latest_checkpoint"].endswith("round_0001.pt")
    run = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(summary["mlflow_run_id"])
    assert run.info.status == "KILLED"


def test_a_resumed_run_ends_exactly_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    straight = run(settings_for(tmp_path, "straight", "strategy=fedadam", "federation.num_rounds=3"))
    first_part = run(settings_for(tmp_path, "part1", "strategy=fedadam", "federation.num_rounds=2"))
    resumed = run(
        settings_for(
            tmp_path, "part2", "strategy=fedadam", "federation.num_rounds=3",
            f"checkpoint.resume_from={first_part.latest_checkpoint}",
        )
    )
    assert resumed.rounds_completed == 3
    assert resumed.final_metrics == pytest.approx(straight.final_metrics, rel=1e-6)
    final = load_model_file(Path(resumed.final_model_path))[0].state_dict()
    expected = load_model_file(Path(straight.final_model_path))[0].state_dict()
    assert all(torch.allclose(final[k], expected[k], atol=1e-6) for k in expected)
    history = json.loads((Path(resumed.output_dir) / "history.json").read_text())
    assert [record["round"] for record in history] == [0, 1, 2, 3]  # the history carries on


def test_a_failed_run_is_recorded_as_failed_and_keeps_its_checkpoint(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "doomed", "federation.num_rounds=2", "federation.min_available_nodes=4")
    with pytest.raises(FederationFailed, match="federation.min_available_nodes=4"):
        run(settings)
    summary = json.loads((tmp_path / "doomed" / "summary.json").read_text())
    assert summary["status"] == "FAILED"
    assert "min_available_nodes" in summary["error"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("fedtriage").experiment_id])
    assert mlflow_run.info.status == "FAILED"


def test_server_needs_the_class_list_to_build_the_model(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, "classless", "holdings=folder", f"holdings.path={tmp_path}")
    with pytest.raises(Exception, match="holdings.classes"):
        run(settings)
