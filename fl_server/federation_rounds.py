"""The server's round loop: wait for nodes, train through the protection seam, evaluate.

It plays the part of `flwr.serverapp.strategy.Strategy.start`, using the same
strategy methods, but adds what a coordinator needs and `start` lacks: a bounded
wait for nodes, a hook after every round (tracking, checkpoints, progress), failed
rounds that are reported instead of silently skipped, resuming from a checkpoint,
and training through `UpdateAggregation`, so that protected modes can run their own
multi-stage exchanges while the strategy only ever sees the aggregate.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from flwr.app import ArrayRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fedtriage.errors import FederationFailed, Interrupted
from fl_protocol.settings import FederationSettings
from fl_server.node_exchange import NodeExchange
from fl_server.protection.aggregation import UpdateAggregation
from fl_server.round_record import RoundRecord
from fl_server.stop_request import stop_requested

logger = logging.getLogger("fedtriage.server")

CentralEvaluation = Callable[[ArrayRecord], dict[str, float]]


class RoundListener(Protocol):
    """Receives what the loop produces; progress, tracking and checkpoints listen."""

    def holdings_reported(self, reports: dict[str, dict[str, int | str]]) -> None:
        """Nodes' first replies carry a report of what their loaders kept and skipped."""

    def round_finished(self, record: RoundRecord, arrays: ArrayRecord) -> None:
        """A round (or round 0, the initial evaluation) completed."""

    def round_failed(self, record: RoundRecord, reason: str) -> None:
        """A round produced no new global model; the model is unchanged."""

    def federated_evaluation(self, record: RoundRecord) -> None:
        """`record.federated_eval` arrived after the round was reported.

        Protected modes evaluate a round's model on the nodes while they train the
        next round (and once more after the last), saving an exchange per round.
        """


@dataclass
class FederationOutcome:
    """The final global model and what every round produced."""

    arrays: ArrayRecord
    history: list[RoundRecord] = field(default_factory=list)
    # Why the run ended before `num_rounds` (e.g. the privacy budget), if it did.
    stop_reason: str | None = None


class FederationRounds:
    """Runs the rounds of one federation run against a Flower `Grid`."""

    def __init__(
        self,
        grid: Grid,
        strategy: Strategy,
        aggregation: UpdateAggregation,
        federation: FederationSettings,
        listener: RoundListener,
        central_evaluation: CentralEvaluation | None = None,
        first_round: int = 1,
    ) -> None:
        self._grid = grid
        self._strategy = strategy
        self._aggregation = aggregation
        # Which rounds to run and how long to wait for nodes and replies.
        self._federation = federation
        self._first_round = first_round
        self._listener = listener
        self._central_evaluation = central_evaluation
        self._exchange = NodeExchange(grid, federation.round_timeout_s)
        # Every round record so far, kept here so a run that fails still has it.
        self.history: list[RoundRecord] = []

    def run(self, arrays: ArrayRecord, history: list[RoundRecord] | None = None) -> FederationOutcome:
        """Run rounds `first_round..federation.num_rounds` starting from `arrays`."""
        self.history = list(history or [])
        outcome = FederationOutcome(arrays=arrays, history=self.history)
        if self._first_round == 1:
            initial = RoundRecord(round=0)
            if self._central_evaluation is not None:
                initial.central_eval = self._central_evaluation(arrays)
            self.history.append(initial)
            self._listener.round_finished(initial, arrays)

        consecutive_failures = 0
        for server_round in range(self._first_round, self._federation.num_rounds + 1):
            if stop_requested():
                raise Interrupted(f"stopped before round {server_round}")
            self._exchange.new_round()
            if reason := self._aggregation.stop_before(server_round, connected=self._wait_for_nodes()):
                logger.warning("stopping before round %d: %s", server_round, reason)
                outcome.stop_reason = reason
                break
            record, new_arrays, failure = self._run_round(server_round, outcome.arrays)
            self.history.append(record)
            if failure is not None:
                consecutive_failures += 1
                logger.error("round %d failed, global model unchanged: %s", server_round, failure)
                self._listener.round_failed(record, failure)
                if consecutive_failures >= self._federation.max_consecutive_failed_rounds:
                    raise FederationFailed(
                        f"{consecutive_failures} consecutive rounds failed "
                        f"(federation.max_consecutive_failed_rounds="
                        f"{self._federation.max_consecutive_failed_rounds}); last: {failure}"
                    )
                continue
            consecutive_failures = 0
            assert new_arrays is not None
            outcome.arrays = new_arrays
            self._listener.round_finished(record, new_arrays)

        if self._aggregation.evaluates_received_model and self._evaluation_wanted():
            self._evaluate_last_model(outcome.arrays)
        return outcome

    def _evaluate_last_model(self, arrays: ArrayRecord) -> None:
        """The last model has not been evaluated on the nodes yet: one evaluation-only session.

        Training is done by then, so nodes that are gone cost the run its last evaluation, not the run.
        """
        self._exchange.new_round()
        try:
            self._wait_for_nodes()
        except FederationFailed as err:
            logger.warning("federated evaluation after round %d skipped: %s", self._federation.num_rounds, err)
            return
        metrics = self._aggregation.evaluate(self._exchange, self._strategy, self._federation.num_rounds, arrays)
        self._attach_federated_evaluation(self._last_completed_round(), metrics.metrics)

    def _run_round(
        self, server_round: int, arrays: ArrayRecord
    ) -> tuple[RoundRecord, ArrayRecord | None, str | None]:
        started = time.perf_counter()
        record = RoundRecord(round=server_round)
        trained = self._aggregation.train_round(self._exchange, self._strategy, server_round, arrays)
        record.nodes_sampled = trained.nodes_sampled
        record.nodes_replied = trained.nodes_contributed
        record.node_train_seconds = trained.node_train_seconds
        record.protocol_metrics.update(trained.protocol_metrics)
        for label, metrics in trained.node_metrics.items():
            record.node_metrics.setdefault(label, {}).update(metrics)
        if trained.holdings_reports:
            self._listener.holdings_reported(trained.holdings_reports)
        if trained.received_model_eval:
            # The nodes evaluated the model they received: the last completed round's.
            self._attach_federated_evaluation(self._last_completed_round(), trained.received_model_eval)
        failure = trained.failure
        if failure is None and trained.nodes_contributed < self._federation.min_train_nodes:
            failure = (
                f"only {trained.nodes_contributed} of {trained.nodes_sampled} sampled nodes contributed an "
                f"update (federation.min_train_nodes={self._federation.min_train_nodes})"
            )
        if failure is not None or trained.arrays is None:
            self._close_record(record, started)
            return record, None, _with_node_errors(failure or "no aggregate", record.node_failures)
        record.train_metrics = trained.metrics

        if not self._aggregation.evaluates_received_model and self._evaluation_wanted():
            evaluated = self._aggregation.evaluate(self._exchange, self._strategy, server_round, trained.arrays)
            record.federated_eval = evaluated.metrics
            for label, metrics in evaluated.node_metrics.items():
                record.node_metrics.setdefault(label, {}).update(metrics)
            if 0 < evaluated.nodes < self._federation.min_evaluate_nodes:
                logger.warning(
                    "round %d: only %d nodes returned an evaluation (federation.min_evaluate_nodes=%d)",
                    server_round, evaluated.nodes, self._federation.min_evaluate_nodes,
                )
        if self._central_evaluation is not None:
            record.central_eval = self._central_evaluation(trained.arrays)
        self._close_record(record, started)
        return record, trained.arrays, None

    def _close_record(self, record: RoundRecord, started: float) -> None:
        """Fill in what every stage of the round's exchanges cost."""
        record.seconds = time.perf_counter() - started
        record.node_failures = self._exchange.failures()
        record.bytes_received = sum(stage.bytes_received for stage in self._exchange.stages)
        uploads: dict[int, int] = {}
        for stage in self._exchange.stages:
            record.protocol_metrics[f"{stage.name}-seconds"] = stage.seconds
            for node_id, size in stage.bytes_by_node.items():
                uploads[node_id] = uploads.get(node_id, 0) + size
        if uploads:
            record.protocol_metrics["bytes-per-node-max"] = float(max(uploads.values()))
            record.protocol_metrics["bytes-per-node-mean"] = sum(uploads.values()) / len(uploads)

    def _attach_federated_evaluation(self, server_round: int, metrics: dict[str, float]) -> None:
        if not metrics:
            return
        target = next((r for r in reversed(self.history) if r.round == server_round), None)
        if target is None:
            target = RoundRecord(round=server_round)
        target.federated_eval = dict(metrics)
        self._listener.federated_evaluation(target)

    def _evaluation_wanted(self) -> bool:
        return getattr(self._strategy, "fraction_evaluate", 1.0) > 0

    def _last_completed_round(self) -> int:
        return max((r.round for r in self.history if r.train_metrics), default=0)

    def _wait_for_nodes(self) -> int:
        """Wait for `min_available_nodes`; return how many are connected."""
        deadline = time.monotonic() + self._federation.node_wait_timeout_s
        needed = self._federation.min_available_nodes
        while (connected := len(list(self._grid.get_node_ids()))) < needed:
            if stop_requested():
                raise Interrupted("stopped while waiting for nodes")
            if time.monotonic() >= deadline:
                raise FederationFailed(
                    f"only {connected} of federation.min_available_nodes={needed} nodes connected "
                    f"within federation.node_wait_timeout_s={self._federation.node_wait_timeout_s:g}; "
                    "start more nodes (SuperNodes, or num-supernodes in a Flower simulation) "
                    "or lower federation.min_available_nodes"
                )
            time.sleep(0.2)
        return connected


def _with_node_errors(failure: str, failures: dict[str, str]) -> str:
    if not failures:
        return failure
    return failure + "; node errors: " + "; ".join(f"{label}: {reason}" for label, reason in sorted(failures.items()))
