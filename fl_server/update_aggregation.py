"""The seam between protected node updates and the strategy's update rule.

Strategies (FedAvg, FedProx, FedAdam, ...) only ever see the aggregate this seam
yields, the way Flower's DP wrappers wrap a strategy. Adding a protection mode
(secure aggregation, CKKS) adds an implementation here and touches neither the
strategies nor the training loop.
"""

import logging
from collections.abc import Iterable
from typing import Protocol

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import Strategy

from fl_protocol.errors import ConfigError
from fl_protocol.settings import UpdateProtectionSettings

logger = logging.getLogger("fedtriage.server")


class UpdateAggregation(Protocol):
    """Turns one round's train replies into the strategy's new global arrays."""

    mode: str

    def aggregate_train(
        self, strategy: Strategy, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Aggregate the replies and apply the strategy's update rule."""


class PlaintextAggregation:
    """Mode `none`: nodes sent plaintext updates, the strategy aggregates them itself.

    For research comparisons only: the server sees every node's update, which can
    be inverted to reconstruct training images.
    """

    mode = "none"

    def __init__(self) -> None:
        logger.warning(
            "secure.mode=none: nodes send PLAINTEXT model updates. Use this only for "
            "research on proxy data; the mode is recorded with the run."
        )

    def aggregate_train(
        self, strategy: Strategy, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        return strategy.aggregate_train(server_round, replies)


def build_update_aggregation(settings: UpdateProtectionSettings) -> UpdateAggregation:
    """The aggregation for `secure.mode`."""
    if settings.mode == "none":
        return PlaintextAggregation()
    raise ConfigError("secure.mode", f"unknown mode {settings.mode!r}")
