"""Model names as the configuration spells them, and how a name becomes a model.

`model.params` are passed to the constructor as keyword arguments; the sizes that
depend on the holdings (classes, channels, image side) come from the caller, so one
configuration fits every holdings source.
"""

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from fedtriage.errors import ConfigError
from fl_protocol.settings import ModelSettings
from models.small_cnn import SmallCNN
from models.torchvision_zoo import build_mobilenet_v3_small, build_resnet18
from models.weights import load_matching_weights

_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "cnn": SmallCNN,
    "resnet18": build_resnet18,
    "mobilenet_v3_small": build_mobilenet_v3_small,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)

# Arguments every builder takes; they follow from the holdings, never from model.params.
_HOLDINGS_ARGS = ("num_classes", "in_channels", "image_size")


def build_model(settings: ModelSettings, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Build the model `settings.name` names, then load `settings.weights_path` if set.

    Raises `ConfigError` naming the setting at fault. Initialisation draws only from
    torch's global generator, so `torch.manual_seed` makes it repeatable.
    """
    if settings.name not in _BUILDERS:
        raise ConfigError("model.name", f"unknown model {settings.name!r}; choose one of {', '.join(MODEL_NAMES)}")
    builder = _BUILDERS[settings.name]
    params = dict(settings.params)
    _check_params(settings.name, builder, params)
    try:
        model = builder(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **params)
    except (TypeError, ValueError) as err:
        raise ConfigError("model.params", f"model {settings.name!r} rejected {params}: {err}") from err

    if settings.weights_path:
        try:
            load_matching_weights(model, Path(settings.weights_path).expanduser())
        except (FileNotFoundError, ValueError) as err:
            raise ConfigError("model.weights_path", str(err)) from err
    return model


def _check_params(name: str, builder: Callable[..., nn.Module], params: dict[str, Any]) -> None:
    """Reject params the builder does not accept, naming the first such key."""
    accepted = [param for param in inspect.signature(builder).parameters if param not in _HOLDINGS_ARGS]
    for key in params:
        if key in _HOLDINGS_ARGS:
            raise ConfigError(f"model.params.{key}", "follows from the holdings and cannot be set here")
        if key not in accepted:
            takes = f"it takes {', '.join(accepted)}" if accepted else "it takes no params"
            raise ConfigError(f"model.params.{key}", f"not a parameter of model {name!r}; {takes}")
