"""Apps for `bench_secure`: nodes send fixed random updates of a chosen size, no training.

`fixed_update_apps` runs our protection modes with the very node-side protection a
real node runs (`attach_protection`, only the work differs) and the real server-side
aggregation; `flower_secaggplus_apps` runs Flower's legacy
SecAgg+ workflow on the same updates. Both go through the same simulation engine.
"""

import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fl_client.holdings import HoldingsReport
from fl_client.protection import LocalTraining, attach_protection
from fl_client.training import TrainResult
from fl_protocol import records
from fl_protocol.protection.modes import Weighting
from fl_protocol.protection.secagg import session
from fl_protocol.settings import RunSettings
from fl_server.node_exchange import NodeExchange, content_bytes
from fl_server.protection import build_update_aggregation
from fl_server.strategy_factory import build_strategy
from models import EvaluationResult

ARRAY_NAME = "w"


@dataclass
class RoundMeasure:
    """One benchmark round: wall time, upload per node, error of the mean against the truth."""

    seconds: float
    bytes_per_node: float
    max_abs_error: float
    failure: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchRun:
    """What a benchmark federation measured, filled in by its ServerApp."""

    rounds: list[RoundMeasure] = field(default_factory=list)
    # The largest error of the mean the quantization promises for the nodes' weights.
    error_bound: float = 0.0


def node_update(node_id: int, values: int, spread: float) -> np.ndarray:
    """The fixed update (delta) a node sends, the same in every mode."""
    return np.random.default_rng(node_id % (2**32)).uniform(-spread, spread, values).astype(np.float32)


def node_examples(node_id: int) -> int:
    return 100 + node_id % 101


ExamplesOf = Callable[[int], int]


class FixedUpdateWork:
    """A node's "work" in the benchmark: the fixed update added to the received model, no training."""

    num_classes = 10

    def __init__(
        self, msg: Message, node_id: int, values: int, spread: float, examples_of: ExamplesOf = node_examples
    ) -> None:
        self._msg = msg
        self._node_id = node_id
        self._values = values
        self._spread = spread
        self._examples = examples_of(node_id)

    def evaluate(self) -> EvaluationResult:
        return EvaluationResult(loss=1.0, accuracy=0.5, macro_f1=0.5, roc_auc=None, num_examples=10)

    def train(self) -> LocalTraining:
        received = self._msg.content[records.ARRAYS_KEY][ARRAY_NAME].numpy()
        trained = {ARRAY_NAME: received + node_update(self._node_id, self._values, self._spread)}
        return LocalTraining(trained, TrainResult(loss=1.0, num_examples=self._examples, seconds=0.0))

    def holdings_report(self) -> HoldingsReport:
        return HoldingsReport(source="fixed updates", loaded=self._examples)


def expected_mean(
    node_ids: list[int], values: int, spread: float, weights_of: Callable[[int], float] = node_examples
) -> np.ndarray:
    """The plaintext mean of the nodes' updates, weighted by `weights_of` (FedAvg: example counts)."""
    weights = np.array([weights_of(node) for node in node_ids], dtype=np.float64)
    updates = np.stack([node_update(node, values, spread).astype(np.float64) for node in node_ids])
    return weights @ updates / weights.sum()


def fixed_update_apps(
    settings: RunSettings, values: int, spread: float, run: BenchRun, examples_of: ExamplesOf = node_examples
) -> tuple[ServerApp, ClientApp]:
    """Our protection mode `settings.secure.mode` on fixed updates of `values` floats.

    The truth the error is measured against is the plaintext mean weighted as
    `secure.secagg.weighting` says (equal, or by the nodes' `examples_of`).
    """
    client = ClientApp()

    def info(context: Context) -> ConfigRecord:
        return ConfigRecord({records.NODE_LABEL: f"node-{context.node_id}"})

    attach_protection(
        client,
        settings_for=lambda context: settings,
        work_for=lambda msg, context, node_settings: FixedUpdateWork(
            msg, context.node_id, values, spread, examples_of
        ),
        node_info=info,
    )

    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        nodes = _wait_for(grid, settings.federation.num_nodes)
        strategy = build_strategy(settings)
        aggregation = build_update_aggregation(settings)
        arrays = ArrayRecord({ARRAY_NAME: Array(np.zeros(values, dtype=np.float32))})
        sec = settings.secure.secagg

        def weight(node: int) -> float:
            return 1.0 if sec.weighting is Weighting.equal else min(examples_of(node), sec.max_weight) / sec.max_weight

        truth = expected_mean(nodes, values, spread, weight)
        total_weight = sum(weight(node) for node in nodes)
        layout = session.layout(values, sec, settings.federation.num_nodes)
        run.error_bound = layout.sum_error_bound(session.UPDATE, len(nodes)) / total_weight  # over the total weight
        for server_round in range(1, settings.federation.num_rounds + 1):
            exchange = NodeExchange(grid, settings.federation.round_timeout_s)
            started = time.perf_counter()
            outcome = aggregation.train_round(exchange, strategy, server_round, arrays)
            seconds = time.perf_counter() - started
            uploads: dict[int, int] = {}
            for stage in exchange.stages:
                for node, size in stage.bytes_by_node.items():
                    uploads[node] = uploads.get(node, 0) + size
            error = float("nan")
            if outcome.arrays is not None:
                error = float(np.max(np.abs(outcome.arrays[ARRAY_NAME].numpy().astype(np.float64) - truth)))
            run.rounds.append(
                RoundMeasure(
                    seconds, float(np.mean(list(uploads.values()))) if uploads else 0.0, error, outcome.failure,
                    {stage.name: stage.seconds for stage in exchange.stages},
                )
            )

    return server, client


def flower_secaggplus_apps(
    settings: RunSettings, values: int, spread: float, run: BenchRun, size_log: Path
) -> tuple[ServerApp, ClientApp]:
    """Flower's legacy SecAgg+ workflow (the peer users would otherwise pick) on the same updates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from flwr.client import NumPyClient
        from flwr.client.mod import secaggplus_mod
        from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
        from flwr.server import LegacyContext, ServerConfig
        from flwr.server.strategy import FedAvg as LegacyFedAvg
        from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    class FixedUpdate(NumPyClient):
        def __init__(self, node_id: int) -> None:
            self.node_id = node_id

        def fit(self, parameters, config):  # type: ignore[no-untyped-def]
            update = parameters[0] + node_update(self.node_id, values, spread)
            return [update], node_examples(self.node_id), {}

    def record_reply_size(msg: Message, context: Context, call_next):  # type: ignore[no-untyped-def]
        reply = call_next(msg, context)
        if reply.has_content():
            with size_log.open("a") as log:
                log.write(f"{context.node_id} {content_bytes(reply.content)}\n")
        return reply

    client = ClientApp(
        client_fn=lambda context: FixedUpdate(context.node_id).to_client(),
        mods=[record_reply_size, secaggplus_mod],
    )

    class TimedFedAvg(LegacyFedAvg):
        def __init__(self, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(**kwargs)
            self.started = 0.0
            self.nodes: list[int] = []
            self.global_model = np.zeros(values)

        def configure_fit(self, server_round, parameters, client_manager):  # type: ignore[no-untyped-def]
            self.started = time.perf_counter()
            self.global_model = parameters_to_ndarrays(parameters)[0].astype(np.float64)
            return super().configure_fit(server_round, parameters, client_manager)

        def aggregate_fit(self, server_round, results, failures):  # type: ignore[no-untyped-def]
            aggregated = super().aggregate_fit(server_round, results, failures)
            seconds = time.perf_counter() - self.started
            error = float("nan")
            if aggregated[0] is not None:
                mean = parameters_to_ndarrays(aggregated[0])[0].astype(np.float64)
                truth = self.global_model + expected_mean(self.nodes, values, spread)
                error = float(np.max(np.abs(mean - truth)))
            run.rounds.append(RoundMeasure(seconds, 0.0, error, None if aggregated[0] is not None else "failed"))
            return aggregated

    server = ServerApp()
    nodes = settings.federation.num_nodes
    threshold = max(2, int(np.ceil(settings.secure.secagg.threshold * nodes)))

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = TimedFedAvg(
            fraction_fit=1.0, fraction_evaluate=0.0, min_fit_clients=nodes, min_available_clients=nodes,
            initial_parameters=ndarrays_to_parameters([np.zeros(values, dtype=np.float32)]),
        )
        strategy.nodes = _wait_for(grid, nodes)
        legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=settings.federation.num_rounds),
                               strategy=strategy)
        workflow = DefaultWorkflow(
            fit_workflow=SecAggPlusWorkflow(
                num_shares=nodes, reconstruction_threshold=threshold, max_weight=1000.0,
                clipping_range=max(8.0, 2 * spread),
            )
        )
        workflow(grid, legacy)

    return server, client


def read_sizes(size_log: Path) -> Iterator[tuple[int, int]]:
    """(node id, reply bytes) pairs the Flower clients logged."""
    for line in size_log.read_text().splitlines():
        node, size = line.split()
        yield int(node), int(size)


def _wait_for(grid: Grid, count: int) -> list[int]:
    while len(nodes := sorted(grid.get_node_ids())) < count:
        time.sleep(0.1)
    return nodes
