"""The argument parser of the commands that take options (not Hydra settings alone)."""

import argparse
from typing import NoReturn

from fedtriage.errors import ConfigError


class CommandParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is the family's one-line error (exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError("arguments", f"{message} (see {self.prog} --help)")
