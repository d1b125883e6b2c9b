"""Keep Flower, Ray and MLflow from sending usage data or checking for updates.

A law-enforcement deployment must not phone home. The switches are listed once, in
`no_phone_home.env` beside this module, which `.ci/run` and the Docker image read too.
`disable_phone_home()` runs when the `fedtriage` command starts (`cli.app`), before
any command imports those libraries, and in the Flower apps (which Flower may start
without the command); child processes (Ray workers, Flower's SuperExec) inherit it.
"""

import os
from pathlib import Path

SWITCHES_FILE = Path(__file__).resolve().with_name("no_phone_home.env")


def _read_switches(path: Path) -> dict[str, str]:
    switches: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            switches[key.strip()] = value.strip()
    return switches


PHONE_HOME_SWITCHES: dict[str, str] = _read_switches(SWITCHES_FILE)


def disable_phone_home() -> None:
    """Set the switches in this process's environment (inherited by children)."""
    os.environ.update(PHONE_HOME_SWITCHES)
