"""From YAML plus overrides to typed, checked settings: the one loader of every config tree.

Hydra composes the YAML (defaults live only there); a dataclass schema gives the result
its types, so an unknown key or a wrong type is a `ConfigError` naming the key; paths
are made absolute where the schema marks them (`path_field`), because Flower apps and
worker processes may run in another working directory.
"""

import dataclasses
import functools
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.singleton import Singleton
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from configs import CONFIG_DIR, CONFIG_NAME
from configs.errors import from_hydra, from_omegaconf
from fedtriage.errors import ConfigError

_Settings = TypeVar("_Settings")

# Marks a settings field holding a file system path (see `absolute_paths`).
_PATH = "fedtriage-path"

# Hydra's compose API keeps global state; server and client apps may share a process.
_COMPOSE_LOCK = threading.Lock()


def path_field(*, required: bool = False, many: bool = False) -> Any:
    """A dataclass field for a path, made absolute by `absolute_paths`.

    Optional paths default to None, `many` (a list of paths) to an empty list.
    """
    if required:
        return dataclasses.field(metadata={_PATH: True})
    if many:
        return dataclasses.field(default_factory=list, metadata={_PATH: True})
    return dataclasses.field(default=None, metadata={_PATH: True})


def compose_config(
    overrides: Sequence[str] = (), config_name: str = CONFIG_NAME, config_dir: Path = CONFIG_DIR
) -> dict[str, Any]:
    """Compose `<config_dir>/<config_name>.yaml` with Hydra overrides into a resolved plain dict."""
    with _COMPOSE_LOCK, _running_app_set_aside():
        try:
            with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
                config = compose(config_name=config_name, overrides=list(overrides))
            resolved = OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
        except OmegaConfBaseException as err:
            raise from_omegaconf(err) from err
        except Exception as err:  # Hydra's override and missing-group errors
            if type(err).__module__.startswith("hydra"):
                raise from_hydra(err, default_tree(config_name, config_dir)) from err
            raise
    assert isinstance(resolved, dict)
    resolved.pop("hydra", None)
    return resolved


@contextmanager
def _running_app_set_aside() -> Iterator[None]:
    """Compose inside a running Hydra app too (a `fedtriage simulate` job that reads the node
    policy's defaults): Hydra allows one initialized instance per process, so the app's is set
    aside while this composes and put back after, as Hydra's own `initialize` does for its."""
    running = Singleton._instances.pop(GlobalHydra, None)
    try:
        yield
    finally:
        if running is not None:
            Singleton._instances[GlobalHydra] = running


def typed_settings(schema: type[_Settings], config: Mapping[str, Any] | Any) -> _Settings:
    """`config` checked against the dataclass `schema`; a `ConfigError` names the first bad key."""
    try:
        settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), config))
    except OmegaConfBaseException as err:
        raise from_omegaconf(err, schema) from err
    assert isinstance(settings, schema)
    return settings


@functools.lru_cache(maxsize=4)
def default_tree(config_name: str = CONFIG_NAME, config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """The configuration with no overrides: where the valid keys are looked up for a suggestion."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        tree = OmegaConf.to_container(compose(config_name=config_name), resolve=False)
    assert isinstance(tree, dict)
    return tree


def require(condition: bool, key: str, problem: str) -> None:
    """Raise `ConfigError(key, problem)` unless `condition`."""
    if not condition:
        raise ConfigError(key, problem)


def one_of(value: str, choices: Sequence[str], key: str) -> None:
    """Raise `ConfigError` naming `key` unless `value` is one of `choices`."""
    require(value in choices, key, f"unknown value {value!r}; choose one of {', '.join(choices)}")


def absolute_path(value: str, base: Path) -> str:
    """`value` with `~` expanded; a relative path is taken from `base`."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def absolute_paths(settings: Any, base: Path) -> None:
    """Make every `path_field` of `settings` (nested dataclasses too) absolute against `base`, in place."""
    for item in dataclasses.fields(settings):
        value = getattr(settings, item.name)
        if item.metadata.get(_PATH):
            if isinstance(value, str) and value:
                setattr(settings, item.name, absolute_path(value, base))
            elif isinstance(value, list):
                setattr(settings, item.name, [absolute_path(str(entry), base) for entry in value])
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            absolute_paths(value, base)
