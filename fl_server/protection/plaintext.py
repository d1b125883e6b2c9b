"""Mode `plaintext`: plaintext updates, aggregated by the strategy itself (research only)."""

import logging

from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import Strategy

from fl_protocol import records
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.settings import RunSettings
from fl_server.node_exchange import NodeExchange
from fl_server.protection.aggregation import EvaluationOutcome, TrainOutcome, scalar_metrics
from fl_server.protection.central_dp import CentralPrivacy

logger = logging.getLogger("fedtriage.server")


class PlaintextAggregation:
    """Mode `plaintext`: nodes send plaintext updates, the strategy aggregates them itself.

    For research comparisons only: the server sees every node's update, which can
    be inverted to reconstruct training images.
    """

    mode = ProtectionMode.plaintext
    evaluates_received_model = False
    privacy: CentralPrivacy | None = None  # central DP needs a secure sum

    def __init__(self, settings: RunSettings | None = None) -> None:
        logger.warning(
            "secure.mode=plaintext: nodes send PLAINTEXT model updates. Use this only for "
            "research on proxy data; the mode is recorded with the run."
        )

    def train_round(
        self, exchange: NodeExchange, strategy: Strategy, server_round: int, arrays: ArrayRecord
    ) -> TrainOutcome:
        messages = list(strategy.configure_train(server_round, arrays, ConfigRecord(), exchange.grid))
        replies = exchange.send_and_receive(messages, "train")
        outcome = TrainOutcome(arrays=None, nodes_sampled=len(messages), nodes_contributed=len(replies))
        for reply in replies:
            label = exchange.label_of(reply.metadata.src_node_id)
            metrics = scalar_metrics(reply.content.get(records.METRICS_KEY))
            outcome.node_train_seconds += metrics.get(records.TRAIN_SECONDS, 0.0)
            outcome.node_metrics[label] = metrics
            if records.HOLDINGS_REPORT_KEY in reply.content:
                outcome.holdings_reports[label] = dict(reply.content[records.HOLDINGS_REPORT_KEY])  # type: ignore[arg-type]
        if not replies:
            return outcome
        try:
            new_arrays, metrics = strategy.aggregate_train(server_round, replies)
        except Exception as err:  # strategies raise their own types on inconsistent replies
            outcome.failure = f"aggregation failed: {type(err).__name__}: {err}"
            return outcome
        if new_arrays is None:
            outcome.failure = f"{type(strategy).__name__} produced no aggregate"
            return outcome
        outcome.arrays = new_arrays
        outcome.metrics = scalar_metrics(metrics)
        return outcome

    def stop_before(self, server_round: int, connected: int) -> str | None:
        return None

    def evaluate(
        self, exchange: NodeExchange, strategy: Strategy, server_round: int, arrays: ArrayRecord
    ) -> EvaluationOutcome:
        messages = strategy.configure_evaluate(server_round, arrays, ConfigRecord(), exchange.grid)
        replies = exchange.send_and_receive(messages, "evaluate")
        if not replies:
            return EvaluationOutcome()
        node_metrics = {
            exchange.label_of(reply.metadata.src_node_id): scalar_metrics(reply.content.get(records.METRICS_KEY))
            for reply in replies
        }
        metrics = scalar_metrics(strategy.aggregate_evaluate(server_round, replies))
        return EvaluationOutcome(metrics=metrics, nodes=len(replies), node_metrics=node_metrics)
