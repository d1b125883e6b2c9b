"""How the resolved configuration crosses into Flower, once, and is read back.

Flower's run config holds only flat scalars, rejects lists and refuses keys that
pyproject.toml does not declare. So the resolved configuration travels as JSON
documents: `fedtriage-config`, the coordinator's whole (`RunSettings`), in the
ServerApp's run config only (`coordinator_run_config`), and `fedtriage-node-config`, the
part nodes need (`NodeSettings`), the only one nodes are given (`node_run_config`) and
the only one the ClientApp reads. Under plain `flwr run .` both are empty and each app
composes `configs/` itself, applying the Hydra overrides in `fedtriage-overrides`.
"""

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from configs.compose import compose_config
from fedtriage.errors import ConfigError
from fl_protocol.settings.run import NodeSettings, RunSettings, settings_from_mapping

CONFIG_KEY = "fedtriage-config"
NODE_CONFIG_KEY = "fedtriage-node-config"
OVERRIDES_KEY = "fedtriage-overrides"

_AnySettings = TypeVar("_AnySettings", bound=NodeSettings)


def coordinator_run_config(settings: RunSettings) -> dict[str, str]:
    """The ServerApp's run config: `settings` whole, and the nodes' part it hands on."""
    return {CONFIG_KEY: json.dumps(settings.to_dict(), sort_keys=True), **node_run_config(settings)}


def node_run_config(settings: RunSettings) -> dict[str, str]:
    """The nodes' run config: their part of `settings` only (no tracking, checkpoints, ...)."""
    return {NODE_CONFIG_KEY: json.dumps(settings.for_nodes().to_dict(), sort_keys=True)}


def settings_from_run_config(run_config: Mapping[str, Any]) -> RunSettings:
    """The coordinator's settings from a Flower run config (see module docstring)."""
    return _read(run_config, CONFIG_KEY, RunSettings)


def node_settings_from_run_config(run_config: Mapping[str, Any]) -> NodeSettings:
    """A node's settings from a Flower run config: only the nodes' document is read."""
    return _read(run_config, NODE_CONFIG_KEY, NodeSettings)


def _read(run_config: Mapping[str, Any], key: str, schema: type[_AnySettings]) -> _AnySettings:
    document = str(run_config.get(key, "") or "")
    if document:
        try:
            config = json.loads(document)
        except json.JSONDecodeError as err:
            raise ConfigError(key, f"not a JSON document: {err}") from err
        return settings_from_mapping(config, schema=schema)
    overrides = shlex.split(str(run_config.get(OVERRIDES_KEY, "") or ""))
    settings = load_settings(overrides)
    return settings if schema is RunSettings else settings.for_nodes()  # type: ignore[return-value]


def load_settings(overrides: Sequence[str] = (), base: Path | None = None) -> RunSettings:
    """Settings from `configs/` with Hydra overrides, paths made absolute against `base`."""
    return settings_from_mapping(compose_config(overrides), base=base or Path.cwd())
