"""Flower's own programs, from the environment fedtriage runs in (never another one on PATH)."""

import sys
from pathlib import Path


def flower_program(name: str) -> str:
    """`flower-superlink`, `flower-supernode`, `flower-superexec` or `flwr` beside this Python."""
    return str(Path(sys.executable).with_name(name))
