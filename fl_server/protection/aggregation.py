"""The seam between node updates and the strategy's update rule.

Strategies (FedAvg, FedProx, FedAdam, ...) only ever see the aggregate this seam
yields, the way Flower's DP wrappers wrap a strategy. Each protection mode runs its
own exchanges with the nodes (plaintext: one; secure aggregation: three stages) behind
this interface and touches neither the strategies nor the training loop.
Implementations: `plaintext`, `secagg`, `ckks` beside this module;
`fl_server.protection.build_update_aggregation` picks one from `secure.mode`.
"""

import logging
from dataclasses import dataclass, field
from typing import Protocol

from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import Strategy

from fl_protocol import records
from fl_protocol.protection.modes import ProtectionMode
from fl_server.node_exchange import NodeExchange
from fl_server.protection.central_dp import CentralPrivacy


@dataclass
class TrainOutcome:
    """What one round's training produced, as the strategy and the records see it."""

    arrays: ArrayRecord | None
    metrics: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    nodes_sampled: int = 0
    nodes_contributed: int = 0
    node_train_seconds: float = 0.0
    # Plaintext only: per-node metrics and holdings reports (protected modes reveal no node's).
    node_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    holdings_reports: dict[str, dict[str, int | str]] = field(default_factory=dict)
    # Protected modes: the nodes' evaluation of the model they received this round.
    received_model_eval: dict[str, float] = field(default_factory=dict)
    protocol_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class EvaluationOutcome:
    """Federated evaluation of one global model."""

    metrics: dict[str, float] = field(default_factory=dict)
    nodes: int = 0
    node_metrics: dict[str, dict[str, float]] = field(default_factory=dict)


class UpdateAggregation(Protocol):
    """Runs a round's training exchanges and applies the strategy to the aggregate."""

    mode: ProtectionMode
    # True: nodes evaluate the model they receive while training, so a separate
    # evaluation exchange is needed only after the last round.
    evaluates_received_model: bool
    # Central DP's noise and ledger (secure modes under privacy=central), else None: its
    # ledger goes into every checkpoint and is restored on resume.
    privacy: CentralPrivacy | None

    def train_round(
        self, exchange: NodeExchange, strategy: Strategy, server_round: int, arrays: ArrayRecord
    ) -> TrainOutcome:
        """Train one round; the returned arrays are the strategy's new global model."""

    def evaluate(
        self, exchange: NodeExchange, strategy: Strategy, server_round: int, arrays: ArrayRecord
    ) -> EvaluationOutcome:
        """Evaluate `arrays` on the nodes."""

    def stop_before(self, server_round: int, connected: int) -> str | None:
        """Why the run must end before `server_round`, which samples from `connected` nodes
        (e.g. a privacy budget the round would exceed), or None."""


def apply_strategy_to_mean(
    strategy: Strategy, server_round: int, instruction: Message, mean_arrays: ArrayRecord, metrics: dict[str, float]
) -> ArrayRecord | None:
    """Let the strategy apply its update rule to a securely computed weighted mean.

    The mean reaches `aggregate_train` as the single reply it aggregates, so FedAvg
    and FedProx adopt it and FedAdam and FedYogi take their optimizer step from it. The
    strategy's log line about that one reply ("Received 1 results") would misinform whoever
    reads Flower's log, so it is left out.
    """
    reply = Message(
        RecordDict(
            {
                records.ARRAYS_KEY: mean_arrays,
                records.METRICS_KEY: MetricRecord({**metrics, records.NUM_EXAMPLES: 1}),
            }
        ),
        reply_to=instruction,
    )
    flower_logger = logging.getLogger("flwr")
    flower_logger.addFilter(_not_a_reply_count)
    try:
        new_arrays, _ = strategy.aggregate_train(server_round, [reply])
    finally:
        flower_logger.removeFilter(_not_a_reply_count)
    return new_arrays


def _not_a_reply_count(record: logging.LogRecord) -> bool:
    return "Received" not in record.getMessage()


def scalar_metrics(metrics: object) -> dict[str, float]:
    """The scalar entries of a MetricRecord (or None) as floats."""
    if metrics is None:
        return {}
    return {key: float(value) for key, value in dict(metrics).items() if not isinstance(value, list)}  # type: ignore[call-overload]
