"""The resolved configuration as MLflow params, so runs can be compared and filtered by setting.

Keys are dotted paths (`federation.num_nodes`), the same spelling as Hydra overrides, so a
value seen in the UI can be pasted back onto the command line.
"""

import json
from collections.abc import Mapping
from typing import Any

from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH

from fl_server.tracking.names import key_segment


def config_params(config: Mapping[str, Any]) -> dict[str, str]:
    """Flatten `config` into dotted keys with text values within MLflow's length limit."""
    params: dict[str, str] = {}
    _flatten(config, (), params)
    return params


def _flatten(node: Any, path: tuple[str, ...], params: dict[str, str]) -> None:
    if isinstance(node, Mapping) and node:
        for name, child in node.items():
            _flatten(child, (*path, str(name)), params)
        return
    params[key_segment(".".join(path), MAX_ENTITY_KEY_LENGTH)] = _text(node)[:MAX_PARAM_VAL_LENGTH]


def _text(value: Any) -> str:
    """Strings as they are; everything else as JSON (`null`, `true`, `[...]`, `{}`)."""
    return value if isinstance(value, str) else json.dumps(value, default=str)
