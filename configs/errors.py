"""Hydra's and OmegaConf's errors as one line that names the setting, and the closest valid one.

Hydra reports a mistyped key as "Could not override ... use +key=value" (advice that only
adds the typo), an unknown option with the whole config search path, and OmegaConf a
list given as a scalar as "AnyNode is not a ListConfig". A user needs the key, the
problem, and where there is one, the key or value they probably meant.
"""

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any, get_args, get_origin

from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from fedtriage.errors import ConfigError

# Option values fedtriage renamed: the old spelling gets the new one suggested.
_RENAMED_OPTIONS = {("secure", "none"): "plaintext"}
_NOT_CONVERTED = re.compile(r"Value '(.*)' of type '\w+' could not be converted to (\w+)")
_KINDS = {"Integer": "a whole number", "Float": "a number", "Boolean": "true or false"}


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` most likely meant to be, if one is close enough."""
    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key(key: str, known: Iterable[str]) -> ConfigError:
    """`key` is no setting; suggest the sibling it most resembles."""
    parent, _, name = key.rpartition(".")
    guess = closest(name, known)
    hint = f"; did you mean {parent + '.' if parent else ''}{guess}?" if guess else ""
    return ConfigError(key, f"no such setting{hint}")


def unknown_option(group: str, option: str, options: Iterable[str]) -> ConfigError:
    """`group=option` names no file of the group; suggest the closest option."""
    choices = sorted(options)
    guess = _RENAMED_OPTIONS.get((group, option)) or closest(option, choices)
    hint = f"did you mean {guess}? " if guess else ""
    return ConfigError(group, f"unknown option {option!r}; {hint}choose one of {', '.join(choices)}")


def from_hydra(err: Exception, tree: Mapping[str, Any]) -> ConfigError:
    """A composition error of Hydra's, against the default configuration `tree`."""
    cause = err.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and getattr(cause, "full_key", None):
        key = str(cause.full_key)
        return unknown_key(key, _keys_at(tree, key.rpartition(".")[0]))
    missing = getattr(err, "missing_cfg_file", None)
    if missing and "/" in missing and getattr(err, "options", None):
        group, _, option = str(missing).rpartition("/")
        return unknown_option(group.replace("/", "."), option, err.options)  # type: ignore[attr-defined]
    return ConfigError("overrides", str(err).strip().split("\n", 1)[0])


def from_omegaconf(err: OmegaConfBaseException, schema: type | None = None) -> ConfigError:
    """OmegaConf's error as ours: the key it names (else `config`), and what is wrong in a few words."""
    key = str(getattr(err, "full_key", None) or "config")
    problem = str(err).split("\n", 1)[0]
    if isinstance(err, ConfigKeyError) and " not in " in problem and schema is not None:
        return unknown_key(key, _schema_keys(schema, key.rpartition(".")[0]))
    if isinstance(err, ValidationError) and "is not a ListConfig" in problem:
        return ConfigError(key, f"must be a list, e.g. {key}=[a,b]")
    if isinstance(err, ValidationError) and "is not a DictConfig" in problem:
        return ConfigError(key, "must be a group of settings, not a single value")
    if isinstance(err, ValidationError) and (wrong := _NOT_CONVERTED.match(problem)):
        value, kind = wrong.groups()
        return ConfigError(key, f"must be {_KINDS.get(kind, kind)}, got {value!r}")
    return ConfigError(key, problem)


def _keys_at(tree: Mapping[str, Any], path: str) -> list[str]:
    node: Any = tree
    for part in filter(None, path.split(".")):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return list(node) if isinstance(node, Mapping) else []


def _schema_keys(schema: type, path: str) -> list[str]:
    node: Any = schema
    for part in filter(None, path.split(".")):
        fields = {item.name: item.type for item in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        node = _dataclass_of(fields.get(part))
    return [item.name for item in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


def _dataclass_of(annotation: Any) -> Any:
    """The dataclass inside an annotation such as `X` or `X | None`."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        return next((arg for arg in get_args(annotation) if dataclasses.is_dataclass(arg)), None)
    return None
