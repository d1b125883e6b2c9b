"""Hydra configuration of fedtriage: the only place where defaults live.

`CONFIG_DIR` locates the YAML files both for `@hydra.main` (the researcher's
entry points) and for Hydra's compose API inside the Flower apps.
"""

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent
CONFIG_NAME = "config"
