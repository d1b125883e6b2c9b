"""Every command the README shows runs as written, in the README's order, on a fresh folder.

The README cannot drift from the code: its ```bash blocks are read from the file itself and
run one after the other through bash in an empty working directory (so `register latest`
finds the run `simulate` made, and classify the device `demo` wrote), with no MLflow or
Flower setting of the shell. Two kinds of line are not run here: the install (this test runs
inside it) and the test command (this test is part of it). The outputs the README quotes are
checked where they do not depend on floating-point details of the machine.
"""

import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from experiments.loopback_federation import stop_session
from fedtriage.environment import PHONE_HOME_SWITCHES
from tests.support.project import PROJECT_DIR
from tests.support.public_datasets import write_cifar10

pytestmark = pytest.mark.slow

README = PROJECT_DIR / "README.md"
# The install and the test command: this test runs inside the one and is part of the other.
NOT_RUN_HERE = ("python3 -m venv", "python -m pytest")
# Commands the README names in its prose (`...`), as it names them -> as run after the blocks.
# (The CPU-only torch install it mentions needs PyTorch's package index: not run here.)
PROSE_COMMANDS = {
    "`fedtriage --help`": "fedtriage --help",
    "`fedtriage COMMAND --help`": (
        "for c in simulate flwr-run classify hash demo model bench provision check coordinator node run audit compare "
        "privacy-audit; do "
        "fedtriage $c --help; done"
    ),
    "`fedtriage provision FEDERATION.yaml --out KITS`": (
        f"fedtriage provision {PROJECT_DIR}/docker/federation.example.yaml --out kits"
    ),
    "`fedtriage provision add-unit NAME --out KITS`": "fedtriage provision add-unit unit4 --out kits",
    "`fedtriage simulate --help`": "fedtriage simulate --help",
    # Every benchmark takes half an hour: tests/cli/test_bench_all.py runs it with one benchmark.
    "`fedtriage bench all`": "fedtriage bench all --help",
    "`fedtriage model approve fedtriage-model N`": "fedtriage model approve fedtriage-model 1",
    "`python -m experiments.simulate`": "python -m experiments.simulate --help",
    "`fedtriage hash known-material/ > known.txt`": (
        "mkdir -p known-material && cp evidence/device1/DCIM/100MEDIA/IMG_000[0-2].png known-material/ && "
        "fedtriage hash known-material/ > known.txt && grep -c '^pdq:' known.txt"
    ),
}


def fenced_blocks() -> list[tuple[int, str, str]]:
    """The README's fenced blocks in order: (where it starts, its language, its text)."""
    text = README.read_text(encoding="utf-8")
    return [(m.start(), m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M)]


def readme_commands() -> list[str]:
    """The commands of the README's ```bash blocks, continuation lines joined, in order."""
    commands = []
    for _, language, block in fenced_blocks():
        for command in block.replace("\\\n", " ").splitlines() if language == "bash" else ():
            if command.strip() and not command.startswith(NOT_RUN_HERE):
                commands.append(command.strip())
    return commands


def readme_output_after(marker: str, nth: int = 0) -> str:
    """The `nth` plain (output) block of the README after the text `marker`."""
    where = README.read_text(encoding="utf-8").index(marker)
    return [block for start, language, block in fenced_blocks() if start > where and not language][nth]


def test_the_readme_names_the_commands_this_test_runs() -> None:
    text = README.read_text(encoding="utf-8")
    assert all(named in text for named in PROSE_COMMANDS)
    commands = readme_commands()
    assert commands[0] == "fedtriage simulate"
    assert any(command.startswith("fedtriage classify") for command in commands)


def test_every_command_of_the_readme_runs_as_written(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "FLWR_"))}
    env.update(PHONE_HOME_SWITCHES)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(PROJECT_DIR)  # `python -m experiments...` as from the clone
    # The public dataset the README trains on, as a researcher has it on disk (a tiny copy).
    write_cifar10(tmp_path / "datasets", per_batch=12)
    outputs: dict[str, str] = {}
    for command in readme_commands():
        if command.startswith("mlflow ui"):
            check_mlflow_ui_serves(command, tmp_path, env)
            continue
        completed = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
        )
        assert completed.returncode == 0, f"{command}\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
        outputs[command] = completed.stdout
    for command in PROSE_COMMANDS.values():
        completed = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert completed.returncode == 0, f"{command}\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"

    check_quoted_outputs(outputs, tmp_path)


def check_quoted_outputs(outputs: dict[str, str], workdir: Path) -> None:
    """What the README quotes of the main job's and of classify's output is what they print."""
    table = readme_output_after("It prints each node's class histogram").splitlines()
    simulated = outputs["fedtriage simulate"]
    assert table[0] in simulated and table[1] in simulated
    assert re.search(r"^\s+5\s+\d\.\d{4}\s+\d\.\d{4}\s+\d\.\d{4}\s+\d+\.\d\d$", simulated, flags=re.M)

    classify = next(output for command, output in outputs.items() if command.startswith("fedtriage classify"))
    summary = readme_output_after("The last command prints")
    for line in summary.splitlines():
        if line.startswith("outputs:"):
            assert f"outputs: {workdir / 'triage-device1'}/{{" in classify
        elif not line.startswith("  score >= 0.5"):  # depends on the trained weights
            assert line in classify.splitlines(), line
    header = readme_output_after("The last command prints", nth=1).splitlines()[0]  # the CSV it quotes
    assert (workdir / "triage-device1" / "triage.csv").read_text(encoding="utf-8").splitlines()[0] == header


def check_mlflow_ui_serves(command: str, workdir: Path, env: dict[str, str]) -> None:
    """`mlflow ui` as written serves the run's store; it is stopped by its process id.

    Port 5000, its default, may be taken on a test machine: MLflow's own MLFLOW_PORT then
    moves it, and the command stays as written.
    """
    port = 5000 if port_is_free(5000) else free_port()
    server = subprocess.Popen(
        ["bash", "-c", f"exec {command}"], cwd=workdir, env={**env, "MLFLOW_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10", timeout=5
                ) as response:
                    assert b"fedtriage" in response.read()
                    break
            except OSError:
                assert server.poll() is None, f"{shlex.quote(command)} exited: {server.stderr.read()[-2000:]}"
                assert time.monotonic() < deadline, "mlflow ui did not answer within 120 s"
                time.sleep(1)
    finally:
        stop_session(server)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
