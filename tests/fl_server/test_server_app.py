"""The ServerApp's run: tracked, checkpointed, resumable, and honest about failure."""

import json
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from fedtriage.errors import FederationFailed
from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings
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
