"""Central evaluation: the server scores the global model on a held-out proxy test set.

The test set is the share of the proxy pool that simulation withholds from every
node (`holdings.test_fraction`), so it never overlaps a node's data. The server
loads no unit's holdings.
"""

import dataclasses

import torch
from flwr.app import ArrayRecord

from fl_client.holdings import central_test_holdings
from fl_protocol.errors import ConfigError
from fl_protocol.settings import RunSettings
from models import build_model, evaluate_model


class CentralEvaluator:
    """Callable: global arrays -> metrics named like federated evaluation's."""

    def __init__(self, settings: RunSettings) -> None:
        test = central_test_holdings(settings)
        if len(test) == 0:
            raise ConfigError(
                "evaluation.central", "needs a held-out test set: set holdings.test_fraction > 0"
            )
        self._dataset = test.as_dataset()
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
