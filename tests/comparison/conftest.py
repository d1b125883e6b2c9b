"""A store of logged runs per test module, and MLflow settings that do not leak between tests."""

from pathlib import Path

import pytest
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT


@pytest.fixture(autouse=True)
def mlflow_env(isolated_mlflow_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The patience `fedtriage compare` sets for a dead server, set here so that it is undone after each test."""
    monkeypatch.setenv(MLFLOW_HTTP_REQUEST_MAX_RETRIES.name, "1")
    monkeypatch.setenv(MLFLOW_HTTP_REQUEST_TIMEOUT.name, "5")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite MLflow store per module (made once: its migrations take seconds); tests use their own experiments."""
    folder: Path = tmp_path_factory.mktemp("store")
    return f"sqlite:///{folder / 'mlflow.db'}"
