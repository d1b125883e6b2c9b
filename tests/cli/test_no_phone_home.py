"""Nothing phones home: every entry point switches Flower, Ray and MLflow telemetry off.

The proof that a whole run attempts no connection beyond loopback is in
test_simulation_e2e.py (it traces every connect() of a real run).
"""

import os
import subprocess
import sys

import pytest

from fedtriage.environment import PHONE_HOME_SWITCHES
from tests.support.project import PROJECT_DIR

# What Flower starts without the `fedtriage` command: each switches the telemetry off itself.
FLOWER_ENTRY_MODULES = ("cli.flower_app", "fl_server.server_app", "fl_client.client_app")


@pytest.mark.parametrize("module", FLOWER_ENTRY_MODULES)
def test_importing_a_flower_entry_point_switches_phone_home_off_by_itself(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in PHONE_HOME_SWITCHES}
    code = (
        "import importlib, os\n"
        f"importlib.import_module({module!r})\n"
        f"expected = {PHONE_HOME_SWITCHES!r}\n"
        "wrong = {k: os.environ.get(k) for k, v in expected.items() if os.environ.get(k) != v}\n"
        "assert not wrong, wrong\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


def test_the_command_switches_phone_home_off_before_importing_flower_ray_or_mlflow() -> None:
    env = {k: v for k, v in os.environ.items() if k not in PHONE_HOME_SWITCHES}
    code = (
        "import os, sys\n"
        "from cli.app import main\n"
        "assert not {'flwr', 'ray', 'mlflow', 'torch'} & set(sys.modules), 'imported before the switches'\n"
        "assert main(['bench', '--help']) == 0\n"
        f"expected = {PHONE_HOME_SWITCHES!r}\n"
        "wrong = {k: os.environ.get(k) for k, v in expected.items() if os.environ.get(k) != v}\n"
        "assert not wrong, wrong\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


def test_ci_and_the_docker_image_take_the_one_list_of_switches() -> None:
    for place in (PROJECT_DIR / ".ci" / "run", PROJECT_DIR / "docker" / "Dockerfile"):
        text = place.read_text()
        assert "-m fedtriage.environment" in text, place
        assert "FLWR_TELEMETRY_ENABLED" not in text, place  # no second list to drift
    exported = subprocess.run(
        ["sh", "-c", f'eval "$({sys.executable} -m fedtriage.environment)" && env'],
        cwd=PROJECT_DIR, capture_output=True, text=True, check=True, env={"PATH": os.environ["PATH"]},
    ).stdout.splitlines()
    assert {f"{key}={value}" for key, value in PHONE_HOME_SWITCHES.items()} <= set(exported)


def test_nodes_never_load_mlflow() -> None:
    code = (
        "import sys\n"
        "import fl_client.client_app\n"
        "assert 'mlflow' not in sys.modules, 'the client app imported mlflow'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
