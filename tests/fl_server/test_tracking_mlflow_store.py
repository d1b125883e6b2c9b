"""MlflowTracker against a real local SQLite MLflow store."""

import json
import os
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import torch
import yaml
from mlflow import MlflowClient

from fedtriage.errors import ConfigError
from fl_protocol.settings import RunSettings
from fl_server.round_record import RoundRecord
from fl_server.tracking import (
    MlflowTracker,
    NullTracker,
    RunOutcome,
    build_tracker,
    read_history,
    resolve_tracking_uri,
)
from fl_server.tracking.model_registry import register_run_model
from models import MODEL_SPEC_METADATA, ModelSpec
from triage.model_source import load_triage_model

pytestmark = pytest.mark.usefixtures("isolated_mlflow_env")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating one takes seconds); tests use own experiments."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"




def history_of(num_rounds: int) -> list[RoundRecord]:
    history = [RoundRecord(round=0, central_eval={"eval-accuracy": 0.1, "eval-loss": 2.3})]
    for r in range(1, num_rounds + 1):
        history.append(
            RoundRecord(
                round=r,
                seconds=1.5,
                train_metrics={"train-loss": 1.0 / r},
                federated_eval={"eval-accuracy": 0.2 * r, "eval-loss": 1.5 / r},
                central_eval={"eval-accuracy": 0.25 * r, "eval-loss": 1.4 / r},
                node_metrics={"Paris/Unit:2": {"train-loss": 0.9 / r}, "node-1": {"train-loss": 1.1 / r}},
                bytes_received=1000 * r,
                nodes_sampled=2,
                nodes_replied=2,
                node_train_seconds=1.0,
            )
        )
    return history


def steps(client: MlflowClient, run_id: str, metric: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric))


def test_a_run_records_config_rounds_plot_history_and_registered_model(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RunSettings],
    store_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model_name = f"model-{request.node.name}"
    settings = settings_for(
        f"tracking.tracking_uri={store_uri}", f"tracking.registered_model_name={model_name}",
        "tracking.register_model=true",
    )
    tracker = build_tracker(settings, tmp_path / "out")
    history = history_of(3)
    spec = ModelSpec.from_settings(settings)
    model = spec.build().eval()
    checkpoint = tmp_path / "checkpoint-round-3.pt"
    torch.save(model.state_dict(), checkpoint)

    assert isinstance(tracker, MlflowTracker)
    tracker.start(settings)
    tracker.log_holdings({"Paris/Unit:2": {"source": "folder /data", "loaded": 120, "skipped": 3}})
    for record in history:
        tracker.log_round(record)
    tracked = tracker.finish(
        RunOutcome(
            "FINISHED", history, model, checkpoint, {MODEL_SPEC_METADATA: spec.to_dict()},
            model_input_shape=(spec.channels, spec.image_size, spec.image_size), model_outputs=len(spec.classes),
        )
    )

    client = MlflowClient(store_uri)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "fedavg-cnn-4nodes-iid"
    assert run.data.params["federation.num_nodes"] == str(settings.federation.num_nodes)
    assert json.loads(run.data.params["holdings.classes"]) == settings.holdings.classes
    assert run.data.tags["fedtriage.update_protection"] == "secagg"
    assert "fedtriage.plaintext_updates" not in run.data.tags

    assert [s for s, _ in steps(client, tracked.run_id, "central/eval-accuracy")] == [0, 1, 2, 3]
    assert steps(client, tracked.run_id, "federated/eval-accuracy") == [
        (r, pytest.approx(0.2 * r)) for r in (1, 2, 3)
    ]
    assert [s for s, _ in steps(client, tracked.run_id, "train/train-loss")] == [1, 2, 3]
    assert [s for s, _ in steps(client, tracked.run_id, "node/Paris_Unit_2/train-loss")] == [1, 2, 3]
    assert steps(client, tracked.run_id, "round/nodes_replied") == [(1, 2.0), (2, 2.0), (3, 2.0)]
    assert steps(client, tracked.run_id, "holdings/Paris_Unit_2/loaded") == [(0, 120.0)]

    artifacts = Path(client.download_artifacts(tracked.run_id, "", str(tmp_path / "artifacts")))
    assert (artifacts / "plots" / "metrics.png").read_bytes().startswith(PNG_SIGNATURE)
    config = yaml.safe_load((artifacts / "config" / "resolved_config.yaml").read_text())
    assert config["federation"]["num_nodes"] == settings.federation.num_nodes
    assert read_history(artifacts / "history.json") == history
    assert json.loads((artifacts / "holdings" / "reports.json").read_text())["Paris/Unit:2"]["loaded"] == 120
    assert (artifacts / "checkpoints" / checkpoint.name).read_bytes() == checkpoint.read_bytes()
    assert read_history(tmp_path / "out" / "history.json") == history

    assert tracked.registered_model_version == "1"
    version = client.get_model_version(model_name, "1")
    assert version.run_id == tracked.run_id
    assert str(client.get_model_version_by_alias(model_name, "candidate").version) == "1"
    assert version.tags["fedtriage.update_protection"] == "secagg"
    assert version.tags["fedtriage.central_accuracy"] == f"{history[-1].central_eval['eval-accuracy']:.4f}"
    assert version.tags["fedtriage.code_fingerprint"].startswith("fedtriage ")
    assert len(version.tags["fedtriage.data_fingerprint"]) == 64
    assert {"fedtriage.privacy", "fedtriage.classes", "fedtriage.run_id", "fedtriage.federated_accuracy"} <= set(
        version.tags
    )
    assert "candidate" in version.description and tracked.run_id in version.description
    # Model logging borrowed MLflow's process-wide state and gave it back.
    assert not mlflow.is_tracking_uri_set() and mlflow.active_run() is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    info = mlflow.models.get_model_info(tracked.model_uri)
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 1, 8, 8]
    assert list(info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 10]
    assert info.metadata[MODEL_SPEC_METADATA] == spec.to_dict() and set(info.flavors) == {"fedtriage"}
    inputs = torch.randn(5, 1, 8, 8)
    for uri in (f"models:/{model_name}/1", tracked.model_uri, f"runs:/{tracked.run_id}/model"):
        loaded = load_triage_model(uri, None, store_uri)
        assert loaded.spec == spec
        torch.testing.assert_close(loaded.module.eval()(inputs), model(inputs))
    assert tracked.ui_command == f"mlflow ui --backend-store-uri {store_uri}"


def test_a_failed_run_is_closed_as_failed_with_the_reason_of_its_failed_round(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RunSettings],
    store_uri: str, tmp_path: Path
) -> None:
    settings = settings_for(
        f"tracking.tracking_uri={store_uri}", "tracking.log_model=false", "tracking.run_name=broken"
    )
    tracker = MlflowTracker(settings.tracking, tmp_path)
    history = history_of(1) + [RoundRecord(round=2, nodes_sampled=4, nodes_replied=1)]
    reason = "only 1 of 4 sampled nodes returned an update"

    tracker.start(settings)
    tracker.log_round(history[1])
    tracker.log_failed_round(history[2], reason)
    tracked = tracker.finish(RunOutcome("FAILED", history, torch.nn.Linear(4, 2), None))

    client = MlflowClient(store_uri)
    run = client.get_run(tracked.run_id)
    assert run.info.status == "FAILED"
    assert run.info.run_name == "broken"
    assert steps(client, tracked.run_id, "round-failed") == [(2, 1.0)]
    assert steps(client, tracked.run_id, "round/nodes_replied") == [(1, 2.0), (2, 1.0)]
    assert run.data.tags["fedtriage.failed_round.2"] == reason
    assert reason in run.data.tags["mlflow.note.content"]
    assert tracked.model_uri is None and tracked.registered_model_version is None
    assert not client.search_logged_models(experiment_ids=[run.info.experiment_id])


def test_a_wrong_final_status_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="FINISHED"):
        RunOutcome("DONE", [])


def test_jobs_of_one_sweep_become_children_of_one_parent_run(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RunSettings],
    store_uri: str, tmp_path: Path
) -> None:
    def run_job(sweep_id: str, lr: float) -> str:
        settings = settings_for(f"tracking.tracking_uri={store_uri}",
            "tracking.log_model=false",
            f"tracking.sweep_id={sweep_id}",
            f"train.lr={lr}",
        )
        tracker = MlflowTracker(settings.tracking, tmp_path / str(lr))
        tracker.start(settings)
        history = history_of(1)
        tracker.log_round(history[1])
        run_id = tracker.finish(RunOutcome("FINISHED", history, None, None)).run_id
        assert run_id is not None
        return run_id

    children = [run_job("2026-01-01_10-00-00", lr) for lr in (0.01, 0.1)]
    other_sweep_child = run_job("2026-01-02_10-00-00", 0.5)

    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name(request.node.name)
    parents = client.search_runs(
        [experiment.experiment_id], filter_string="tags.`fedtriage.sweep_parent` = '2026-01-01_10-00-00'"
    )
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "sweep-2026-01-01_10-00-00"
    assert parent.info.status == "FINISHED"
    for child_id in children:
        tags = client.get_run(child_id).data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["fedtriage.sweep"] == "2026-01-01_10-00-00"
    assert client.get_run(other_sweep_child).data.tags["mlflow.parentRunId"] != parent.info.run_id


def test_configured_tracking_uri_wins_over_the_environment(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RunSettings],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    settings = settings_for("tracking.tracking_uri=sqlite:////srv/tracking/mlflow.db")

    assert resolve_tracking_uri(settings.tracking.tracking_uri) == "sqlite:////srv/tracking/mlflow.db"


def test_environment_tracking_uri_is_used_when_none_is_configured(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RunSettings],
    store_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    monkeypatch.chdir(tmp_path)
    settings = settings_for("tracking.log_model=false")

    tracker = MlflowTracker(settings.tracking, tmp_path / "out")
    tracker.start(settings)
    tracked = tracker.finish(RunOutcome("FINISHED", [], None, None))

    assert tracked.tracking_uri == store_uri
    assert MlflowClient(store_uri).get_run(tracked.run_id).info.status == "FINISHED"
    assert not (tmp_path / "mlflow.db").exists()


def test_default_store_is_sqlite_in_the_working_directory_with_artifacts_beside_it(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RunSettings],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = settings_for("tracking.log_model=false")

    tracker = MlflowTracker(settings.tracking, tmp_path / "out")
    tracker.start(settings)
    tracked = tracker.finish(RunOutcome("FINISHED", history_of(1), None, None))

    expected = f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert resolve_tracking_uri(settings.tracking.tracking_uri) == expected
    assert tracked.tracking_uri == expected
    run = MlflowClient(expected).get_run(tracked.run_id)
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert artifacts.is_relative_to(tmp_path.resolve() / "mlartifacts")
    assert (artifacts / "history.json").is_file()
    assert not (tmp_path / "mlruns").exists()


def test_disabled_tracking_writes_nothing_to_mlflow_but_keeps_the_local_history(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RunSettings],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/from-env.db")
    settings = settings_for("tracking.enabled=false")
    history = history_of(2)

    tracker = build_tracker(settings, tmp_path / "out")
    tracker.start(settings)
    tracker.log_holdings({"node-0": {"loaded": 1, "skipped": 0}})
    for record in history:
        tracker.log_round(record)
    tracker.log_failed_round(RoundRecord(round=3), "no nodes")
    tracked = tracker.finish(RunOutcome("FINISHED", history, torch.nn.Linear(4, 2), None))

    assert isinstance(tracker, NullTracker)
    assert tracked.run_id is None and tracked.ui_command == ""
    assert os.listdir(tmp_path) == ["out"]  # no mlflow.db, from-env.db, mlruns or mlartifacts
    assert os.listdir(tmp_path / "out") == ["history.json"]
    assert read_history(tmp_path / "out" / "history.json") == history


def test_a_run_logs_its_model_but_registers_it_only_when_asked(
    settings_for: Callable[..., RunSettings], store_uri: str, tmp_path: Path
) -> None:
    settings = settings_for(f"tracking.tracking_uri={store_uri}", "tracking.registered_model_name=never-registered")
    tracker = build_tracker(settings, tmp_path / "out")
    tracker.start(settings)
    tracked = tracker.finish(RunOutcome("FINISHED", history_of(1), torch.nn.Linear(4, 2)))
    assert tracked.model_uri is not None and tracked.registered_model_version is None
    assert MlflowClient(store_uri).search_model_versions("name = 'never-registered'") == []


def test_the_experiment_opens_on_its_training_runs_in_mlflow_3(
    request: pytest.FixtureRequest, settings_for: Callable[..., RunSettings], store_uri: str, tmp_path: Path
) -> None:
    settings = settings_for(f"tracking.tracking_uri={store_uri}", "tracking.log_model=false")
    tracker = build_tracker(settings, tmp_path / "out")
    tracker.start(settings)
    tracker.finish(RunOutcome("FINISHED", history_of(1)))
    experiment = MlflowClient(store_uri).get_experiment_by_name(request.node.name)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_only_a_finished_runs_model_is_registered(
    settings_for: Callable[..., RunSettings], store_uri: str, tmp_path: Path
) -> None:
    settings = settings_for(f"tracking.tracking_uri={store_uri}")
    tracker = build_tracker(settings, tmp_path / "out")
    tracker.start(settings)
    killed = tracker.finish(RunOutcome("KILLED", history_of(1), torch.nn.Linear(4, 2))).run_id
    with pytest.raises(ConfigError, match="ended KILLED"):
        register_run_model(store_uri, killed, "never-registered")


def test_configured_tags_mark_a_run_but_never_overwrite_what_fedtriage_records_of_it(
    settings_for: Callable[..., RunSettings], store_uri: str, tmp_path: Path
) -> None:
    settings = settings_for(f"tracking.tracking_uri={store_uri}", "tracking.log_model=false",
                            "++tracking.tags={role: baseline, fedtriage.update_protection: none}")
    tracker = MlflowTracker(settings.tracking, tmp_path / "out")
    tracker.start(settings)
    run_id = tracker.finish(RunOutcome("FINISHED", history_of(1), None, None)).run_id
    assert run_id is not None
    tags = MlflowClient(store_uri).get_run(run_id).data.tags
    assert tags["role"] == "baseline"
    assert tags["fedtriage.update_protection"] == "secagg"
