"""The `fedtriage` command family: every command listed and helped, one exit code per kind of ending."""

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cli.app import COMMANDS, main
from configs.compose import default_tree
from configs.help import leaves
from fedtriage.errors import FederationFailed
from tests.support.project import FEDTRIAGE, PROJECT_DIR
from triage.settings import TRIAGE_CONFIG_DIR


def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_"))}
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_command_with_one_line_each() -> None:
    completed = run(FEDTRIAGE, "--help")
    assert completed.returncode == 0
    listed = re.findall(r"^  ([\w-]+)  +\S.*$", completed.stdout, re.MULTILINE)
    assert listed == list(COMMANDS) == ["simulate", "flwr-run", "classify", "hash", "demo", "model", "bench",
                                        "provision", "check", "coordinator", "node", "run", "audit",
                                        "compare", "privacy-audit"]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_help(command: str) -> None:
    completed = run(FEDTRIAGE, command, "--help", timeout=180)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip()


@pytest.mark.parametrize("name", ["accuracy", "secure", "classify", "deploy"])
def test_every_benchmark_has_help(name: str) -> None:
    completed = run(FEDTRIAGE, "bench", name, "--help")
    assert completed.returncode == 0, completed.stderr
    assert f"fedtriage bench {name}" in completed.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [(["simulat"], "command: unknown command 'simulat'"), (["bench", "speed"], "NAME: unknown benchmark 'speed'")],
)
def test_an_unknown_command_or_benchmark_is_exit_2_naming_it(args: list[str], named: str) -> None:
    completed = run(FEDTRIAGE, *args)
    assert completed.returncode == 2
    assert completed.stderr.strip() == completed.stderr.strip().splitlines()[0]  # one line
    assert named in completed.stderr


def test_a_failed_federation_is_exit_1_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    def fail(argv: list[str]) -> int:
        raise FederationFailed("3 consecutive rounds failed")

    import cli.bench as bench

    monkeypatch.setattr(bench, "main", fail)
    assert main(["bench", "accuracy"]) == 1
    assert capsys.readouterr().err == "fedtriage: federation failed: 3 consecutive rounds failed\n"


def test_the_old_entry_point_is_an_alias_of_fedtriage_simulate(tmp_path: Path) -> None:
    completed = run(sys.executable, "-m", "experiments.simulate", "partition.alpha=0", cwd=tmp_path)
    assert completed.returncode == 2
    assert "fedtriage: error: partition.alpha: must be > 0" in completed.stderr


def test_the_docker_image_copies_exactly_the_packages_the_project_installs() -> None:
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())
    installed = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    dockerfile = (PROJECT_DIR / "docker" / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, re.MULTILINE))
    assert copied == installed
    assert not re.search(r"^COPY \. ", dockerfile, re.MULTILINE)  # never the whole build folder


@pytest.mark.slow
def test_the_docker_images_entrypoint_runs_the_main_job(tmp_path: Path) -> None:
    """The very command line of docker/Dockerfile, with the image's folder as this checkout."""
    dockerfile = (PROJECT_DIR / "docker" / "Dockerfile").read_text()
    (entrypoint,) = re.findall(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.MULTILINE)
    argv = [part.replace("/opt/fedtriage", str(PROJECT_DIR)) for part in eval(entrypoint)]  # noqa: S307 - our own file
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FLWR_", "RAY_"))}
    env["PATH"] = f"{Path(FEDTRIAGE).parent}{os.pathsep}{env['PATH']}"
    completed = subprocess.run(
        [*argv, "federation.num_rounds=1", "tracking.log_model=false", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, shlex.join(argv) + "\n" + completed.stdout[-3000:] + completed.stderr[-3000:]
    assert (tmp_path / "run" / "summary.json").is_file()
    assert (tmp_path / "mlflow.db").is_file()


@pytest.mark.parametrize(
    ("command", "tree"),
    [("simulate", lambda: default_tree()), ("classify", lambda: default_tree("classify", TRIAGE_CONFIG_DIR))],
)
def test_a_commands_help_lists_every_setting_with_its_default_and_one_line(command: str, tree) -> None:  # type: ignore[no-untyped-def]
    completed = run(FEDTRIAGE, command, "--help")
    assert completed.returncode == 0, completed.stderr
    described = dict(re.findall(r"^  ([\w.]+) = .*?  +(\S.*)$", completed.stdout, re.MULTILINE))
    keys = [key for key, _ in leaves(tree())]
    assert keys and all(described.get(key) for key in keys), [key for key in keys if not described.get(key)]
    assert not re.search(r"^  triage ", completed.stdout, re.MULTILINE)  # classify's folder is no group of simulate
