"""Hydra configuration of fedtriage: the only place where defaults live.

`CONFIG_DIR` locates the YAML files both for `@hydra.main` (`fedtriage simulate`) and
for Hydra's compose API inside the Flower apps and the other commands; `compose`
turns a YAML tree plus overrides into typed settings.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
CONFIG_NAME = "config"
