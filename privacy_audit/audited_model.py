"""The global model of an audited round: built as nodes build it, moved as named numpy arrays.

Nodes and server exchange a model as named arrays (`fl_protocol.protection.array_vector`
flattens them in this order); the audit keeps the global model the server sent in that
form, so the attacker's model and every node's are the very same weights.
"""

import numpy as np
import torch
from torch import nn

from fl_protocol.settings import NodeSettings
from models import ModelSpec

ModelArrays = dict[str, np.ndarray]


def build_audited_model(settings: NodeSettings, arrays: ModelArrays | None = None) -> nn.Module:
    """The run's model for its holdings' classes, channels and image size; with `arrays` loaded."""
    assert settings.holdings.classes, "the audited run names its classes"
    model = ModelSpec.from_settings(settings).build()
    if arrays is not None:
        model.load_state_dict({name: torch.from_numpy(np.array(value)) for name, value in arrays.items()})
    return model


def model_arrays(model: nn.Module) -> ModelArrays:
    """The model's state as named arrays, in the order nodes and server flatten them."""
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()}
