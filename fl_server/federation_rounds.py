"""The server's round loop: sample nodes, send instructions, aggregate, evaluate.

It mirrors `flwr.serverapp.strategy.Strategy.start`, using the same strategy
methods, but adds what a coordinator needs and `start` lacks: a bounded wait for
nodes, a hook after every round (tracking, checkpoints, progress), failed rounds
that are reported instead of silently skipped, resuming from a checkpoint, and
aggregation through the update-protection seam.
"""

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from fl_protocol import records
from fl_protocol.settings import FederationSettings
from fl_server.round_record import RoundRecord
from fl_server.update_aggregation import UpdateAggregation

logger = logging.getLogger("fedtriage.server")

CentralEvaluation = Callable[[ArrayRecord], dict[str, float]]


class FederationError(RuntimeError):
    """The federation cannot go on: too few nodes, or too many failed rounds."""


class RoundListener(Protocol):
    """Receives what the loop produces; progress, tracking and checkpoints listen."""

    def holdings_reported(self, reports: dict[str, dict[str, int | str]]) -> None:
        """Nodes' first replies carry a report of what their loaders kept and skipped."""

    def round_finished(self, record: RoundRecord, arrays: ArrayRecord) -> None:
        """A round (or round 0, the initial evaluation) completed."""

    def round_failed(self, record: RoundRecord, reason: str) -> None:
        """A round produced no new global model; the model is unchanged."""


@dataclass(frozen=True)
class RoundPlan:
    """Which rounds to run and how long to wait for nodes and replies."""

    num_rounds: int
    min_available_nodes: int
    min_train_nodes: int
    min_evaluate_nodes: int
    node_wait_timeout_s: float
    round_timeout_s: float
    max_consecutive_failed_rounds: int
    first_round: int = 1

    @classmethod
    def from_settings(cls, federation: FederationSettings, first_round: int = 1) -> "RoundPlan":
        """The plan `federation.*` describes, starting at `first_round`."""
        return cls(
            num_rounds=federation.num_rounds,
            first_round=first_round,
            min_available_nodes=federation.min_available_nodes,
            min_train_nodes=federation.min_train_nodes,
            min_evaluate_nodes=federation.min_evaluate_nodes,
            node_wait_timeout_s=federation.node_wait_timeout_s,
            round_timeout_s=federation.round_timeout_s,
            max_consecutive_failed_rounds=federation.max_consecutive_failed_rounds,
        )


@dataclass
class FederationOutcome:
    """The final global model and what every round produced."""

    arrays: ArrayRecord
    history: list[RoundRecord] = field(default_factory=list)


class FederationRounds:
    """Runs the rounds of one federation run against a Flower `Grid`."""

    def __init__(
        self,
        grid: Grid,
        strategy: Strategy,
        aggregation: UpdateAggregation,
        plan: RoundPlan,
        listener: RoundListener,
        central_evaluation: CentralEvaluation | None = None,
    ) -> None:
        self._grid = grid
        self._strategy = strategy
        self._aggregation = aggregation
        self._plan = plan
        self._listener = listener
        self._central_evaluation = central_evaluation
        self._labels: dict[int, str] = {}
        # Every round record so far, kept here so a run that fails still has it.
        self.history: list[RoundRecord] = []

    def run(self, arrays: ArrayRecord, history: list[RoundRecord] | None = None) -> FederationOutcome:
        """Run rounds `plan.first_round..plan.num_rounds` starting from `arrays`."""
        self.history = list(history or [])
        outcome = FederationOutcome(arrays=arrays, history=self.history)
        if self._plan.first_round == 1 and self._central_evaluation is not None:
            initial = RoundRecord(round=0, central_eval=self._central_evaluation(arrays))
            outcome.history.append(initial)
            self._listener.round_finished(initial, arrays)

        consecutive_failures = 0
        for server_round in range(self._plan.first_round, self._plan.num_rounds + 1):
            record, new_arrays, failure = self._run_round(server_round, outcome.arrays)
            outcome.history.append(record)
            if failure is not None:
                consecutive_failures += 1
                logger.error("round %d failed, global model unchanged: %s", server_round, failure)
                self._listener.round_failed(record, failure)
                if consecutive_failures >= self._plan.max_consecutive_failed_rounds:
                    raise FederationError(
                        f"{consecutive_failures} consecutive rounds failed "
                        f"(federation.max_consecutive_failed_rounds="
                        f"{self._plan.max_consecutive_failed_rounds}); last: {failure}"
                    )
                continue
            consecutive_failures = 0
            assert new_arrays is not None
            outcome.arrays = new_arrays
            self._listener.round_finished(record, new_arrays)
        return outcome

    def _run_round(
        self, server_round: int, arrays: ArrayRecord
    ) -> tuple[RoundRecord, ArrayRecord | None, str | None]:
        started = time.perf_counter()
        record = RoundRecord(round=server_round)
        self._wait_for_nodes()

        replies, sampled = self._exchange(
            self._strategy.configure_train(server_round, arrays, ConfigRecord(), self._grid),
            record,
        )
        record.nodes_sampled = sampled
        record.nodes_replied = len(replies)
        reports = {
            self._label(reply): dict(reply.content[records.HOLDINGS_REPORT_KEY])
            for reply in replies
            if records.HOLDINGS_REPORT_KEY in reply.content
        }
        if reports:
            self._listener.holdings_reported(reports)  # type: ignore[arg-type]
        if len(replies) < self._plan.min_train_nodes:
            record.seconds = time.perf_counter() - started
            return record, None, (
                f"only {len(replies)} of {sampled} sampled nodes returned an update "
                f"(federation.min_train_nodes={self._plan.min_train_nodes})"
                + _describe_failures(record.node_failures)
            )
        for reply in replies:
            metrics = _metrics_of(reply.content)
            record.node_train_seconds += metrics.get(records.TRAIN_SECONDS, 0.0)
            record.node_metrics.setdefault(self._label(reply), {}).update(metrics)
        try:
            new_arrays, train_metrics = self._aggregation.aggregate_train(
                self._strategy, server_round, replies
            )
        except Exception as err:  # strategies raise their own types on inconsistent replies
            record.seconds = time.perf_counter() - started
            return record, None, f"aggregation failed: {type(err).__name__}: {err}"
        if new_arrays is None:
            record.seconds = time.perf_counter() - started
            return record, None, f"{type(self._strategy).__name__} produced no aggregate"
        record.train_metrics = _scalars(train_metrics)

        record.federated_eval = self._evaluate_federated(server_round, new_arrays, record)
        if self._central_evaluation is not None:
            record.central_eval = self._central_evaluation(new_arrays)
        record.seconds = time.perf_counter() - started
        return record, new_arrays, None

    def _evaluate_federated(
        self, server_round: int, arrays: ArrayRecord, record: RoundRecord
    ) -> dict[str, float]:
        messages = self._strategy.configure_evaluate(server_round, arrays, ConfigRecord(), self._grid)
        replies, _ = self._exchange(messages, record)
        if not replies:
            return {}
        if len(replies) < self._plan.min_evaluate_nodes:
            logger.warning(
                "round %d: only %d nodes returned an evaluation (federation.min_evaluate_nodes=%d)",
                server_round, len(replies), self._plan.min_evaluate_nodes,
            )
        for reply in replies:
            record.node_metrics.setdefault(self._label(reply), {}).update(_metrics_of(reply.content))
        return _scalars(self._strategy.aggregate_evaluate(server_round, replies))

    def _exchange(self, messages: Iterable[Message], record: RoundRecord) -> tuple[list[Message], int]:
        """Send, wait, and keep the good replies in a fixed order (by node label).

        Errors and missing replies are entered in `record.node_failures`.
        """
        messages = list(messages)
        if not messages:
            return [], 0
        replies = list(self._grid.send_and_receive(messages, timeout=self._plan.round_timeout_s))
        good: list[Message] = []
        answered: set[int] = set()
        for reply in replies:
            node_id = reply.metadata.src_node_id
            answered.add(node_id)
            record.bytes_received += _payload_bytes(reply)
            if reply.has_error():
                record.node_failures[self._label_of(node_id)] = reply.error.reason
                continue
            if records.NODE_INFO_KEY in reply.content:
                self._labels[node_id] = str(reply.content[records.NODE_INFO_KEY][records.NODE_LABEL])
            good.append(reply)
        for message in messages:
            if message.metadata.dst_node_id not in answered:
                record.node_failures[self._label_of(message.metadata.dst_node_id)] = (
                    f"no reply within federation.round_timeout_s={self._plan.round_timeout_s:g}"
                )
        good.sort(key=self._label)
        return good, len(messages)

    def _wait_for_nodes(self) -> None:
        deadline = time.monotonic() + self._plan.node_wait_timeout_s
        needed = self._plan.min_available_nodes
        while (connected := len(list(self._grid.get_node_ids()))) < needed:
            if time.monotonic() >= deadline:
                raise FederationError(
                    f"only {connected} of federation.min_available_nodes={needed} nodes connected "
                    f"within federation.node_wait_timeout_s={self._plan.node_wait_timeout_s:g}; "
                    "start more nodes (SuperNodes, or num-supernodes in a Flower simulation) "
                    "or lower federation.min_available_nodes"
                )
            time.sleep(0.2)

    def _label(self, reply: Message) -> str:
        return self._label_of(reply.metadata.src_node_id)

    def _label_of(self, node_id: int) -> str:
        return self._labels.get(node_id, f"node-id-{node_id}")


def _metrics_of(content: RecordDict) -> dict[str, float]:
    metrics = content.get(records.METRICS_KEY)
    if metrics is None:
        return {}
    return {key: float(value) for key, value in metrics.items() if not isinstance(value, list)}


def _scalars(metrics: object) -> dict[str, float]:
    if metrics is None:
        return {}
    return {key: float(value) for key, value in dict(metrics).items() if not isinstance(value, list)}  # type: ignore[call-overload]


def _payload_bytes(reply: Message) -> int:
    """Bytes of the arrays and scalar metrics a reply carried (its dominant payload)."""
    if not reply.has_content():
        return 0
    content = reply.content
    array_bytes = sum(len(array.data) for record in content.array_records.values() for array in record.values())
    scalar_bytes = 8 * sum(len(record) for record in content.metric_records.values())
    return array_bytes + scalar_bytes


def _describe_failures(failures: dict[str, str]) -> str:
    if not failures:
        return ""
    return "; node errors: " + "; ".join(f"{label}: {reason}" for label, reason in sorted(failures.items()))
