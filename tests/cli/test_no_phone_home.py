"""Nothing phones home: every entry point switches Flower, Ray and MLflow telemetry off.

The proof that a whole run attempts no connection beyond loopback is in
test_simulation_e2e.py (it traces every connect() of a real run).
"""

import os
import subprocess
import sys

import pytest

from fedtriage.environment import PHONE_HOME_SWITCHES, SWITCHES_FILE
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


def test_ci_and_the_docker_image_read_the_one_list_of_switches() -> None:
    listed = SWITCHES_FILE.relative_to(PROJECT_DIR).as_posix()
    assert listed in (PROJECT_DIR / ".ci" / "run").read_text()
    assert listed in (PROJECT_DIR / "docker" / "Dockerfile").read_text()
    for text in ((PROJECT_DIR / ".ci" / "run").read_text(), (PROJECT_DIR / "docker" / "Dockerfile").read_text()):
        assert "FLWR_TELEMETRY_ENABLED" not in text  # no second list to drift


def test_nodes_never_load_mlflow() -> None:
    code = (
        "import sys\n"
        "import fl_client.client_app\n"
        "assert 'mlflow' not in sys.modules, 'the client app imported mlflow'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
