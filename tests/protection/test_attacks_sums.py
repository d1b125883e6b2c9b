"""Attacks on what a secure sum reveals or lets one node do: counts, wrapped values, precision.

The nodes are the real protected node (`attach_protection`, `SecAggNode`) with fixed
updates instead of training; the coordinator runs the real session, and as an attacker
chooses who takes part in each round and solves the sums it gets.
"""

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from experiments.secure_bench_apps import ARRAY_NAME, BenchRun, FixedUpdateWork, fixed_update_apps, node_update
from fl_client.kit import KIT_KEY, node_kit
from fl_client.protection import attach_protection
from fl_client.protection import secagg as secagg_node
from fl_client.protection.contribution import encode_contribution
from fl_protocol import packed_content, records
from fl_protocol.protection import messages
from fl_protocol.protection.ckks_contexts import generate_context, share_context
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.protection.secagg import session
from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings
from fl_server.node_exchange import NodeExchange
from fl_server.protection import build_update_aggregation
from fl_server.protection.secagg_keys import SecAggRunKeys
from fl_server.protection.secagg_session import SessionResult, run_session
from fl_server.strategy_factory import build_strategy
from tests.support.inprocess_grid import InProcessGrid
from tests.support.kits import provision_nodes

pytestmark = pytest.mark.attack

NODES = [101, 102, 103, 104, 105, 106]
VALUES = 50
SPREAD = 1e-3
# Distinct example counts, so that a solve that works shows each node's own.
EXAMPLES = {node: 40 + 37 * index for index, node in enumerate(NODES)}


def run_settings(*overrides: str) -> RunSettings:
    return load_settings([f"federation.num_nodes={len(NODES)}", "tracking.enabled=false", *overrides])


def protected_app(settings: RunSettings, malicious: dict[int, object] | None = None) -> ClientApp:
    """Real protected nodes with fixed updates; `malicious[node]` rewrites that node's vector before masking."""
    malicious = malicious or {}
    app = ClientApp()
    attach_protection(
        app,
        settings_for=lambda context: settings,
        work_for=lambda msg, context, node_settings: FixedUpdateWork(
            msg, context.node_id, VALUES, SPREAD, EXAMPLES.__getitem__
        ),
        node_info=lambda context: ConfigRecord({records.NODE_LABEL: f"node-{context.node_id}"}),
    )
    if not malicious:
        return app
    honest = app

    wrapped = ClientApp()

    @wrapped.train()
    def train(msg: Message, context: Context) -> Message:
        if context.node_id not in malicious:
            return honest(msg, context)
        received = {ARRAY_NAME: msg.content[records.ARRAYS_KEY][ARRAY_NAME].numpy()}
        trained = {ARRAY_NAME: received[ARRAY_NAME] + node_update(context.node_id, VALUES, SPREAD)}
        from fl_client.training import TrainResult
        from models import EvaluationResult

        evaluation = EvaluationResult(loss=1.0, accuracy=0.5, macro_f1=0.5, roc_auc=None, num_examples=10)
        result = TrainResult(loss=1.0, num_examples=EXAMPLES[context.node_id], seconds=0.0)
        vector = encode_contribution(settings, received, trained, result, evaluation).encoded.vector
        vector = malicious[context.node_id](vector)  # type: ignore[operator]
        kit = node_kit(context.node_config)
        return secagg_node.masked(msg, context, kit, vector, ConfigRecord({records.NODE_LABEL: "attacker"}))

    for message_type in messages.QUERIES:
        wrapped.query(messages.action(message_type))(honest)
    return wrapped


class Federation:
    """The coordinator's view: real nodes on an in-process grid, the real session code."""

    def __init__(self, folder: Path, settings: RunSettings, policy=None, malicious=None) -> None:  # type: ignore[no-untyped-def]
        self.kit, configs = provision_nodes(folder, NODES, policy)
        if settings.secure.mode is ProtectionMode.ckks:  # a node makes the key, the others' kits share it
            node_kits = [Path(str(configs[node][KIT_KEY])) for node in NODES]
            generate_context(settings.secure.ckks, node_kits[0])
            share_context(node_kits[0], node_kits, self.kit.path)
        self.settings = settings = dataclasses.replace(settings, kit=str(self.kit.path))
        self.grid = InProcessGrid(protected_app(settings, malicious), configs, {})
        self.exchange = NodeExchange(self.grid, timeout_s=1.0)
        self.run_keys = SecAggRunKeys(self.kit)
        self.content = RecordDict(
            {
                records.ARRAYS_KEY: ArrayRecord({ARRAY_NAME: Array(np.zeros(VALUES, dtype=np.float32))}),
                records.CONFIG_KEY: ConfigRecord({"server-round": 1}),
            }
        )

    def session(self, cohort: list[int]) -> SessionResult:
        registered = self.run_keys.ensure_setup(self.exchange, cohort)
        sec = self.settings.secure.secagg
        return run_session(
            self.exchange, self.run_keys, sec, session.layout(VALUES, sec, len(NODES)), self.content,
            messages.SECAGG_TRAIN, sorted(registered), 2,
        )


def least_squares_counts(federation: Federation, segment: str) -> np.ndarray:
    """The attack: rounds with every node but one, then solve the sums for each node's value."""
    rows, sums = [], []
    for left_out in NODES:
        cohort = [node for node in NODES if node != left_out]
        result = federation.session(cohort)
        assert result.failure is None, result.failure
        rows.append([1.0 if node in result.used else 0.0 for node in NODES])
        sums.append(float(result.sums[segment][0]))
    solution, *_ = np.linalg.lstsq(np.array(rows), np.array(sums), rcond=None)
    return solution


def test_example_counts_a_coordinator_solving_cohort_sums_learns_no_count_under_the_default_weighting(
    tmp_path: Path,
) -> None:
    federation = Federation(tmp_path, run_settings())
    truth = np.array([EXAMPLES[node] for node in NODES], dtype=float)
    for segment in (session.WEIGHT, session.EXAMPLES, session.EVAL_WEIGHT):
        recovered = least_squares_counts(federation, segment)
        # Every node's value is the same (1 or 0): nothing in the sums depends on its count.
        assert np.allclose(recovered, recovered[0]) and not np.allclose(recovered, truth)


def test_example_counts_a_node_refuses_count_weighting_unless_its_own_policy_releases_counts(tmp_path: Path) -> None:
    settings = run_settings("secure.secagg.weighting=examples")
    refusing = Federation(tmp_path / "default-policy", settings)
    result = refusing.session(NODES)
    assert result.sums is None and result.counts["dropped-at-share-keys"] == len(NODES)
    refusals = [reply.error.reason for reply in refusing.grid.received if reply.has_error()]
    assert refusals and all(reason == "refused: policy release-counts" for reason in refusals)
    # The control: nodes whose units allow it send their counts, and the same solve recovers them.
    releasing = Federation(tmp_path / "releasing", settings, policy={"secure": {"release_counts": True}})
    recovered = least_squares_counts(releasing, session.EXAMPLES)
    assert np.allclose(recovered, [EXAMPLES[node] for node in NODES])


def rewrite_segment(segment: str, value: int):  # type: ignore[no-untyped-def]
    """An attacker's rewrite of its own vector: every level of `segment` set to `value` (mod 2^32)."""

    def rewrite(vector: np.ndarray) -> np.ndarray:
        layout = session.layout(VALUES, run_settings().secure.secagg, len(NODES))
        start = _offsets(layout)[segment]
        length = next(item.length for item in layout.segments if item.name == segment)
        vector = vector.copy()
        vector[start : start + length] = np.uint32(value % 2**32)
        return vector

    return rewrite


def _offsets(layout) -> dict[str, int]:  # type: ignore[no-untyped-def]
    offsets, position = {}, 0
    for segment in layout.segments:
        offsets[segment.name] = position
        position += segment.length
    return offsets


def train_round(federation: Federation):  # type: ignore[no-untyped-def]
    """One training round through the aggregation the server runs."""
    settings = federation.settings
    aggregation = build_update_aggregation(settings)
    return aggregation.train_round(
        federation.exchange, build_strategy(settings), 1, federation.content[records.ARRAYS_KEY]
    )


@pytest.mark.parametrize("weight", [1 - (len(NODES) - 1), 0, 2])
def test_wrapped_weight_a_node_shrinking_or_growing_the_weight_sum_fails_the_round_and_never_moves_the_model(
    tmp_path: Path, weight: int
) -> None:
    """Finding 6: a weight of 1 - (others' weight) modulo 2^32 made the sum 1 and scaled the mean by 300."""
    federation = Federation(tmp_path, run_settings(), malicious={NODES[0]: rewrite_segment(session.WEIGHT, weight)})
    outcome = train_round(federation)
    assert outcome.arrays is None and outcome.nodes_contributed == len(NODES)  # the attacker's vector was summed
    # Below the number of nodes: the weight check; above: no honest cohort could have sent it.
    assert "each counts once" in str(outcome.failure) or "weight lie outside" in str(outcome.failure)


def test_wrapped_update_a_sum_no_honest_cohort_can_send_fails_the_round(tmp_path: Path) -> None:
    federation = Federation(tmp_path, run_settings(), malicious={NODES[0]: rewrite_segment(session.UPDATE, 2**31)})
    result = federation.session(NODES)
    assert NODES[0] in result.used and result.sums is None
    assert "update lie outside what 6 honest nodes can send" in str(result.failure)
    outcome = train_round(federation)
    assert outcome.arrays is None and "outside what" in str(outcome.failure)


@pytest.mark.parametrize("examples", [5, 20, 2000, 10_000])
def test_small_nodes_the_secure_mean_stays_within_1e_3_of_the_plaintext_mean(examples: int) -> None:
    """Finding 10: relative error 1.26 at 5 examples under the old weighting; now within 1e-3."""
    settings = run_settings("federation.num_rounds=1", "federation.round_timeout_s=5")
    error = _relative_error_of_the_mean(settings, examples)
    assert error <= 1e-3, error


def test_small_nodes_a_node_warns_when_its_settings_cost_its_update_precision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = run_settings(
        "federation.num_rounds=1", "federation.round_timeout_s=5", "secure.secagg.weighting=examples",
        "simulation.node_policy.secure.release_counts=true",
    )
    with caplog.at_level(logging.WARNING, logger="fedtriage.client"):
        error = _relative_error_of_the_mean(settings, 5, policy={"secure": {"release_counts": True}})
    assert error > 1e-3
    assert any("secure.secagg.max_weight" in record.getMessage() for record in caplog.records)


def _relative_error_of_the_mean(settings: RunSettings, examples: int, policy=None) -> float:  # type: ignore[no-untyped-def]
    """A whole secure round of nodes holding `examples` each: |secure - plaintext| / |plaintext| of the mean update."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        kit, configs = provision_nodes(Path(folder), NODES, policy)
        settings = dataclasses.replace(settings, kit=str(kit.path))
        run = BenchRun()
        server, client = fixed_update_apps(settings, VALUES, SPREAD, run, examples_of=lambda node: examples)
        grid = InProcessGrid(client, configs, {})
        server(grid, Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={}))
    (measured,) = run.rounds
    assert measured.failure is None, measured.failure
    truth = np.mean([node_update(node, VALUES, SPREAD).astype(np.float64) for node in NODES], axis=0)
    return measured.max_abs_error / float(np.max(np.abs(truth)))


def test_one_node_refusing_to_sign_the_cohort_fails_one_round_not_the_run(tmp_path: Path) -> None:
    """Review finding: a cohort member that masks but never signs would fail every round."""
    refuser = NODES[2]
    settings = run_settings()
    federation = Federation(tmp_path, settings)
    honest = federation.grid._app  # noqa: SLF001

    def refuse_to_sign(msg: Message, context: Context) -> Message:
        if context.node_id == refuser and msg.metadata.message_type == messages.SECAGG_CONSISTENCY:
            raise RuntimeError("this node never signs")
        reply = honest(msg, context)
        if reply.has_content():
            reply.content = packed_content.unpack(reply.content)  # as the node itself built it
        if context.node_id == refuser and reply.has_content() and messages.SHARES_RECORD in reply.content:
            reply.content[messages.SHARES_RECORD]["cohort-sig"] = b""  # nor at stage 1 (the fast path)
        return reply

    federation.grid._app = refuse_to_sign  # noqa: SLF001
    aggregation = build_update_aggregation(federation.settings)
    first = aggregation.train_round(federation.exchange, build_strategy(settings), 1,
                                    federation.content[records.ARRAYS_KEY])
    assert first.arrays is None and "signed the cohort" in str(first.failure)
    second = aggregation.train_round(federation.exchange, build_strategy(settings), 2,
                                     federation.content[records.ARRAYS_KEY])
    assert second.failure is None and second.nodes_contributed == len(NODES) - 1
    assert second.protocol_metrics["secagg-excluded"] == 1
