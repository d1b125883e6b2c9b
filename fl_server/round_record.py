"""What one federated round produced, as the server reports and tracks it."""

from dataclasses import dataclass, field


@dataclass
class RoundRecord:
    """Results of one round (round 0 holds only the initial central evaluation).

    Metric names are those of `fl_protocol.records` (e.g. "train-loss",
    "eval-accuracy"); central evaluation uses the same names as federated evaluation.
    """

    round: int
    seconds: float = 0.0
    train_metrics: dict[str, float] = field(default_factory=dict)
    federated_eval: dict[str, float] = field(default_factory=dict)
    central_eval: dict[str, float] = field(default_factory=dict)
    # Per node label ("node-0", or a unit's name): its own train/eval metrics.
    node_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # Bytes of the records in the replies the server received this round.
    bytes_received: int = 0
    nodes_sampled: int = 0
    nodes_replied: int = 0
    # Node label -> reason, for nodes whose reply was an error or never came.
    node_failures: dict[str, str] = field(default_factory=dict)
    # Summed local training seconds reported by the nodes (engine overhead = seconds / this).
    node_train_seconds: float = 0.0
    # How the update protection went: seconds per stage, survivors, dropouts per stage,
    # bytes uploaded per node, values outside the clipping range, epsilon spent.
    protocol_metrics: dict[str, float] = field(default_factory=dict)
