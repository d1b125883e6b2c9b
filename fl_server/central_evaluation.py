"""Central evaluation: the server scores the global model on a labelled test set it is handed.

The server loads no images itself: whoever starts it hands it the test set
(`CentralTestSet`, see `cli.flower_app`). A simulation hands over the share of the proxy
pool withheld from every node (`holdings.test_fraction`), so it overlaps no node's
data, or a labelled folder of the coordinator's own (`evaluation.test_set`).
"""

import dataclasses
from dataclasses import dataclass

import torch
from flwr.app import ArrayRecord
from torch.utils.data import TensorDataset

from fedtriage.errors import ConfigError
from fl_protocol.settings import RunSettings
from models import build_model, evaluate_model


@dataclass(frozen=True)
class CentralTestSet:
    """Labelled images: uint8 [N, C, H, W] and int64 [N] indexing into `classes`."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]


class CentralEvaluator:
    """Callable: global arrays -> metrics named like federated evaluation's."""

    def __init__(self, settings: RunSettings, test: CentralTestSet) -> None:
        if list(test.classes) != list(settings.holdings.classes or ()):
            raise ConfigError(
                "evaluation.test_set", f"its classes {list(test.classes)} differ from holdings.classes"
            )
        self._dataset = TensorDataset(test.images.to(torch.float32).div_(255.0), test.labels)
        self._num_classes = len(test.classes)
        self._batch_size = max(settings.train.batch_size, 256)
        self._model = build_model(
            dataclasses.replace(settings.model, weights_path=None),
            num_classes=self._num_classes,
            in_channels=settings.holdings.channels,
            image_size=settings.holdings.image_size,
        )

    def __call__(self, arrays: ArrayRecord) -> dict[str, float]:
        self._model.load_state_dict(arrays.to_torch_state_dict())
        with torch.inference_mode():
            result = evaluate_model(
                self._model, self._dataset, batch_size=self._batch_size, num_classes=self._num_classes
            )
        return result.to_metrics()
