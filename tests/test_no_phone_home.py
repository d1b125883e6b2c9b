"""Nothing phones home: every entry point switches Flower, Ray and MLflow telemetry off.

The proof that a whole run attempts no connection beyond loopback is in
test_simulation_e2e.py (it traces every connect() of a real run).
"""

import os
import subprocess
import sys

import pytest

from fl_protocol.telemetry import PHONE_HOME_SWITCHES

ENTRY_MODULES = (
    "experiments.simulate",
    "experiments.bench_accuracy",
    "fl_server.server_app",
    "fl_client.client_app",
)


@pytest.mark.parametrize("module", ENTRY_MODULES)
def test_importing_an_entry_point_switches_phone_home_off_by_itself(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in PHONE_HOME_SWITCHES}
    code = (
        "import importlib, os\n"
        f"importlib.import_module({module!r})\n"
        f"expected = {PHONE_HOME_SWITCHES!r}\n"
        "wrong = {k: os.environ.get(k) for k, v in expected.items() if os.environ.get(k) != v}\n"
        "assert not wrong, wrong\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)


def test_nodes_never_load_mlflow() -> None:
    code = (
        "import sys\n"
        "import fl_client.client_app\n"
        "assert 'mlflow' not in sys.modules, 'the client app imported mlflow'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
