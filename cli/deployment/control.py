"""The SuperLink's Control API, through Flower's own CLI, from the coordinator's host only.

Flower's CLI keeps its configuration under FLWR_HOME: here the coordinator's state folder
(`flwr/config.toml`, one connection to the SuperLink's loopback port with the loopback CA),
never the project's pyproject.toml or the user's home.
"""

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.deployment.flower_programs import flower_program
from fedtriage.errors import FederationFailed

CONNECTION = "coordinator"
# Flower's plain-format copy of each coloured log line (and its DEBUG lines): shown once, coloured.
_PLAIN_LOG_LINE = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d:(DEBUG|INFO):")
_STARTED_RUN = re.compile(r"Successfully started run (\d+)")
_ALREADY_REGISTERED = "Public key already in use"


@dataclass(frozen=True)
class ControlConnection:
    """Flower's CLI with its home in the coordinator's state folder."""

    flower_home: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "FLWR_HOME": str(self.flower_home)}


def write_cli_config(flower_home: Path, port: int, ca_certificate: Path) -> ControlConnection:
    """Flower's `config.toml` with the one connection this coordinator's commands use."""
    flower_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (flower_home / "config.toml").write_text(
        "# Written by `fedtriage coordinator start`: Flower's CLI on this host reaches the SuperLink here.\n"
        f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
        f'address = "127.0.0.1:{port}"\nroot-certificates = "{ca_certificate}"\n',
        encoding="utf-8",
    )
    return ControlConnection(flower_home)


def register_supernode(connection: ControlConnection, public_key: Path) -> bool:
    """Register a unit's SuperNode key; False if the SuperLink already has it."""
    result = _flwr(connection, ["supernode", "register", str(public_key), CONNECTION])
    if result.returncode == 0:
        return True
    if _ALREADY_REGISTERED in result.stdout + result.stderr:
        return False
    raise FederationFailed(f"the SuperLink did not register {public_key}: "
                           f"{_last_words(result.stdout + result.stderr)}")


def list_runs(connection: ControlConnection, run_id: int | None = None) -> list[dict[str, Any]]:
    """The SuperLink's runs as Flower's `flwr ls --format json` describes them."""
    extra = ["--run-id", str(run_id)] if run_id is not None else []
    result = _flwr(connection, ["ls", CONNECTION, "--format", "json", *extra])
    document = _json(result)
    runs = document.get("runs", [])
    return list(runs) if isinstance(runs, list) else []


def stop_run(connection: ControlConnection, run_id: int) -> None:
    result = _flwr(connection, ["stop", str(run_id), CONNECTION, "--format", "json"])
    document = _json(result)
    if not document.get("success", False):
        raise FederationFailed(f"the SuperLink did not stop run {run_id}: {document.get('error-message', document)}")


def submit_command(app: Path, run_config: str) -> list[str]:
    """`flwr run APP coordinator --run-config ... --stream`: submits, then follows the run's log."""
    return [flower_program("flwr"), "run", str(app), CONNECTION, "--run-config", run_config, "--stream"]


def started_run_id(line: str) -> int | None:
    match = _STARTED_RUN.search(line)
    return int(match.group(1)) if match else None


def shown_once(line: str) -> bool:
    """False for Flower's plain copy of a log line it also prints coloured."""
    return not _PLAIN_LOG_LINE.match(line)


def _flwr(connection: ControlConnection, arguments: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [flower_program("flwr"), *arguments], env=connection.env, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL, check=False,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Mapping[str, Any]:
    try:
        document = json.loads(result.stdout[result.stdout.index("{"):])
    except ValueError as err:
        raise FederationFailed(f"Flower's CLI answered no JSON: {_last_words(result.stdout + result.stderr)}") from err
    if not isinstance(document, dict):
        raise FederationFailed(f"Flower's CLI answered {document!r}")
    return document


def _last_words(text: str) -> str:
    lines = [line.strip(" │╭╮╰╯─") for line in text.splitlines()]
    return " ".join(line for line in lines if line)[-400:] or "no output"
