"""Test session set-up and the fixtures tests share.

Nothing phones home, whatever a test imports first; MLflow settings of the shell never
leak into a test (`isolated_mlflow_env`); `settings_for` composes the project's
configuration with overrides, under an MLflow experiment named after the test.
"""

from collections.abc import Callable

import pytest

from fedtriage.environment import disable_phone_home
from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings

disable_phone_home()

# MLflow reads these from the environment; a test sets what it needs itself.
MLFLOW_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_RUN_ID",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
)


@pytest.fixture
def isolated_mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MLflow setting leaks in from the shell or out into later tests."""
    disable_phone_home()
    for name in MLFLOW_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def settings_for(request: pytest.FixtureRequest) -> Callable[..., RunSettings]:
    """`settings_for(*overrides)`: the project's settings, tracked under an experiment named after the test."""

    def compose(*overrides: str) -> RunSettings:
        return load_settings([f"tracking.experiment_name={request.node.name}", *overrides])

    return compose
