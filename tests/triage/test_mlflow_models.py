"""Models triage loads from MLflow: a tracked run's model is a weights-only file, loaded without
unpickling anything; a pickled `mlflow.pytorch` model (as fedtriage logged before) loads only
when the examiner says `allow_pickle=true`, with a warning.

A real SQLite MLflow store under the test's temporary folder; `fedtriage classify` as a user runs it.
"""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pytorch
import pytest
import torch
from mlflow import MlflowClient

from cli.app import main
from fedtriage.environment import disable_phone_home
from fl_client.holdings import write_synthetic_holdings
from fl_protocol.run_config import load_settings
from fl_server.tracking import MlflowTracker, RunOutcome
from models import MODEL_SPEC_METADATA, ModelSpec, save_model_file
from tests.conftest import MLFLOW_ENV

CLASSES = ["disc", "square"]
MODEL_NAME = "triage-model"
SETTINGS = ["holdings=synthetic", "holdings.classes=[disc,square]", "holdings.image_size=16"]


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One SQLite store for the module (creating one takes seconds), no MLflow setting from the shell."""
    disable_phone_home()
    with pytest.MonkeyPatch.context() as env:
        for name in MLFLOW_ENV:
            env.delenv(name, raising=False)
        yield f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return ModelSpec.from_settings(load_settings(SETTINGS))


@pytest.fixture(scope="module")
def trained(spec: ModelSpec) -> torch.nn.Module:
    torch.manual_seed(7)
    return spec.build()


@pytest.fixture(scope="module")
def tracked_run_id(
    store_uri: str, spec: ModelSpec, trained: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A finished run whose final model is registered as version 1 of MODEL_NAME, as the server leaves it."""
    settings = load_settings([
        *SETTINGS, f"tracking.tracking_uri={store_uri}", "tracking.experiment_name=triage-models",
        f"tracking.registered_model_name={MODEL_NAME}", "tracking.register_model=true",
    ])
    tracker = MlflowTracker(settings.tracking, tmp_path_factory.mktemp("run"))
    tracker.start(settings)
    tracked = tracker.finish(
        RunOutcome(
            "FINISHED", [], trained, None, {MODEL_SPEC_METADATA: spec.to_dict()},
            model_input_shape=(spec.channels, spec.image_size, spec.image_size), model_outputs=len(spec.classes),
        )
    )
    assert tracked.run_id is not None and tracked.registered_model_version == "1"
    return tracked.run_id


@pytest.fixture(scope="module")
def pickled_run_id(
    store_uri: str, spec: ModelSpec, trained: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A run with the same model logged the way fedtriage did before: pickled by `mlflow.pytorch`."""
    artifacts = tmp_path_factory.mktemp("pickled-artifacts").as_uri()  # not ./mlruns of the working directory
    experiment = MlflowClient(store_uri).create_experiment("pickled-models", artifact_location=artifacts)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_TRACKING_URI", store_uri)
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.pytorch.log_model(
                trained, name="model", serialization_format="pickle", metadata={MODEL_SPEC_METADATA: spec.to_dict()}
            )
    return run.info.run_id


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("device")
    write_synthetic_holdings(root / "DCIM", CLASSES, 4, 32, "png", seed=2)
    for marker in (root / "DCIM").glob(".*"):  # the generator's bookkeeping, not evidence
        marker.unlink()
    return root


@pytest.fixture(scope="module")
def file_scores(
    tmp_path_factory: pytest.TempPathFactory, device: Path, spec: ModelSpec, trained: torch.nn.Module
) -> dict[str, float]:
    """What the same weights score from a local model file: what every MLflow source must give."""
    folder = tmp_path_factory.mktemp("file")
    model = save_model_file(folder / "final_model.pt", trained, spec)
    assert main(["classify", f"source={device}", f"model={model}", f"out={folder / 'out'}", "progress=false"]) == 0
    return scores(folder / "out")


@pytest.fixture
def weights_only_loads(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[Any]]:
    """Every `torch.load` in the test must be weights-only: one that could unpickle code fails it."""
    real_load = torch.load
    seen: list[Any] = []

    def load(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("weights_only"))
        assert kwargs.get("weights_only") is True, "a torch.load that may unpickle code"
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    return lambda: seen


def scores(out: Path) -> dict[str, float]:
    report = json.loads((out / "triage.json").read_text())
    return {row["relative_path"]: row["score"] for row in report["files"] if row["status"] == "classified"}


def classify(device: Path, out: Path, *settings: str) -> int:
    return main(["classify", f"source={device}", f"out={out}", "progress=false", *settings])


def test_a_tracked_runs_model_is_a_weights_only_file_with_its_spec(
    store_uri: str, tracked_run_id: str, spec: ModelSpec, trained: torch.nn.Module, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)  # MLflow finds a run's logged model in its process-wide store
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{tracked_run_id}/model", dst_path=str(tmp_path)))
    assert set(mlflow.models.Model.load(str(folder)).flavors) == {"fedtriage"}
    saved = torch.load(folder / "model.pt", weights_only=True)
    assert saved["model_spec"] == spec.to_dict()
    for name, tensor in trained.state_dict().items():
        torch.testing.assert_close(saved["model_state"][name], tensor)
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pth"))


@pytest.mark.parametrize("model", [f"models:/{MODEL_NAME}/1", f"models:/{MODEL_NAME}@candidate", "runs:/{run}/model"])
def test_classify_scores_with_a_tracked_runs_model_without_unpickling(
    store_uri: str, tracked_run_id: str, device: Path, file_scores: dict[str, float], tmp_path: Path, model: str,
    weights_only_loads: Callable[[], list[Any]],
) -> None:
    out = tmp_path / "out"
    assert classify(device, out, f"model={model.format(run=tracked_run_id)}", f"tracking_uri={store_uri}") == 0
    assert weights_only_loads()  # the model was loaded, and only weights-only
    assert scores(out) == file_scores and len(file_scores) == 2 * 4
    assert not mlflow.is_tracking_uri_set()  # MLflow's process-wide store was pointed back


def test_a_pickled_model_is_refused_in_one_line_naming_allow_pickle(
    store_uri: str, pickled_run_id: str, device: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    weights_only_loads: Callable[[], list[Any]],
) -> None:
    uri = f"runs:/{pickled_run_id}/model"
    code = classify(device, tmp_path / "out", f"model={uri}", f"tracking_uri={store_uri}")
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"fedtriage: error: model: {uri} is a pickled model, which runs code when loaded; "
        "pass allow_pickle=true if you trust where it came from"
    ]
    assert weights_only_loads() == []
    assert not (tmp_path / "out" / "triage.json").exists()


def test_allow_pickle_loads_a_pickled_model_with_a_warning(
    store_uri: str, pickled_run_id: str, device: Path, file_scores: dict[str, float], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    uri = f"runs:/{pickled_run_id}/model"
    code = classify(device, tmp_path / "out", f"model={uri}", f"tracking_uri={store_uri}", "allow_pickle=true")
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "allow_pickle" in line]
    assert warnings == [f"fedtriage: warning: model: loading {uri}, a pickled model, which runs code when loaded "
                        "(allow_pickle=true)"]
    assert scores(tmp_path / "out") == file_scores
