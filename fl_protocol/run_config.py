"""How the resolved configuration crosses into Flower, once, and is read back.

Flower's run config holds only flat scalars, rejects lists and refuses keys that
pyproject.toml does not declare. So the whole resolved Hydra configuration travels as
one JSON document under `fedtriage-config`; both apps read it back into `RunSettings`.
Under plain `flwr run .` that key is empty and both apps compose `configs/` themselves,
applying the Hydra overrides in `fedtriage-overrides` (e.g. "strategy=fedprox").
"""

import json
import shlex
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from configs import CONFIG_DIR, CONFIG_NAME
from fl_protocol.errors import ConfigError
from fl_protocol.settings import RunSettings, settings_from_mapping, with_absolute_paths

CONFIG_KEY = "fedtriage-config"
OVERRIDES_KEY = "fedtriage-overrides"

# Hydra's compose API keeps global state; server and client apps may share a process.
_COMPOSE_LOCK = threading.Lock()


def to_run_config(settings: RunSettings) -> dict[str, str]:
    """The Flower run config carrying `settings`."""
    return {CONFIG_KEY: json.dumps(settings.to_dict(), sort_keys=True)}


def settings_from_run_config(run_config: Mapping[str, Any]) -> RunSettings:
    """Read settings back from a Flower run config (see module docstring)."""
    document = str(run_config.get(CONFIG_KEY, "") or "")
    if document:
        try:
            config = json.loads(document)
        except json.JSONDecodeError as err:
            raise ConfigError(CONFIG_KEY, f"not a JSON document: {err}") from err
        return settings_from_mapping(config)
    overrides = shlex.split(str(run_config.get(OVERRIDES_KEY, "") or ""))
    return settings_from_mapping(with_absolute_paths(compose_config(overrides), Path.cwd()))


def compose_config(
    overrides: Sequence[str] = (), config_name: str = CONFIG_NAME, config_dir: Path = CONFIG_DIR
) -> dict[str, Any]:
    """Compose `<config_dir>/<config_name>.yaml` with Hydra overrides into a resolved plain dict."""
    with _COMPOSE_LOCK:
        try:
            with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
                config = compose(config_name=config_name, overrides=list(overrides))
            resolved = OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "config"
            raise ConfigError(str(key), str(err).split("\n", 1)[0]) from err
        except Exception as err:  # Hydra's override and missing-group errors
            if type(err).__module__.startswith("hydra"):
                raise ConfigError("overrides", str(err).strip()) from err
            raise
    assert isinstance(resolved, dict)
    resolved.pop("hydra", None)
    return resolved


def load_settings(overrides: Sequence[str] = (), base: Path | None = None) -> RunSettings:
    """Settings from `configs/` with Hydra overrides, paths made absolute against `base`."""
    return settings_from_mapping(with_absolute_paths(compose_config(overrides), base or Path.cwd()))


def section_key(section: Any) -> str:
    """A stable text key for a settings section, for caches keyed by configuration."""
    return json.dumps(OmegaConf.to_container(OmegaConf.structured(section)), sort_keys=True)
