"""SecAgg+ on the Message API: exact sums of the survivors, dropouts, tampering, the server's view."""

import dataclasses

import numpy as np
import pytest
from flwr.app import Array, ConfigRecord, Message, RecordDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fl_client.kit import node_kit
from fl_client.protection import secagg as secagg_node
from fl_protocol.protection import messages
from fl_protocol.protection.secagg import session
from fl_protocol.protection.secagg.wire import ids_to_bytes
from fl_protocol.settings import SecAggSettings
from fl_server.node_exchange import NodeExchange
from fl_server.protection.secagg_keys import SecAggRunKeys
from fl_server.protection.secagg_session import run_session
from tests.support.inprocess_grid import InProcessGrid
from tests.support.kits import shared_node_kits
from tests.support.known_contributions import known_contributions_app, known_values, layout_for

BASE = SecAggSettings(
    neighbours=None, threshold=0.6, quantization_bits=16, clip_range=1.0, max_weight=1000, metric_bound=100.0
)


def run(
    nodes: list[int],
    secagg: SecAggSettings = BASE,
    drop_at: dict[str, set[int]] | None = None,
    tamper=None,
    tamper_instruction=None,
    min_nodes: int = 2,
    max_contributors: int | None = None,
):
    drop_at = drop_at or {}
    max_contributors = max_contributors or len(nodes)

    def drop(node_id: int, message: Message) -> bool:
        if tamper_instruction is not None:
            tamper_instruction(node_id, message)
        return node_id in drop_at.get(message.metadata.message_type, set())

    app = known_contributions_app(secagg, max_contributors=max_contributors)
    coordinator_kit, node_configs = shared_node_kits(nodes)
    grid = InProcessGrid(app, node_configs, {}, drop=drop, tamper=tamper)
    exchange = NodeExchange(grid, timeout_s=0.2)
    run_keys = SecAggRunKeys(coordinator_kit)
    registered = run_keys.ensure_setup(exchange, nodes)
    result = run_session(
        exchange, run_keys, secagg, layout_for(secagg, max_contributors), RecordDict(), messages.SECAGG_TRAIN,
        sorted(registered), min_nodes,
    )
    return result, grid


def expected_sum(used: list[int], secagg: SecAggSettings = BASE) -> dict[str, np.ndarray]:
    values = [known_values(node, secagg.clip_range) for node in used]
    return {name: np.sum([v[name] for v in values], axis=0) for name in ("update", "count")}


def assert_exact(result, secagg: SecAggSettings = BASE) -> None:
    assert result.failure is None, result.failure
    expected = expected_sum(result.used, secagg)
    bound = layout_for(secagg, 1).step("update") / 2 * len(result.used)
    assert np.max(np.abs(result.sums["update"] - expected["update"])) <= bound * (1 + 1e-9)
    assert result.sums["count"][0] == expected["count"][0]


NODES = [11, 22, 33, 44, 55]


def test_the_session_yields_the_sum_of_every_node_within_the_quantization_bound() -> None:
    result, _ = run(NODES)
    assert result.used == NODES
    assert_exact(result)


@pytest.mark.parametrize(
    "stage", [messages.SECAGG_SETUP, messages.SECAGG_SHARE_KEYS, messages.SECAGG_TRAIN, messages.SECAGG_UNMASK]
)
def test_nodes_dropping_at_any_stage_leave_the_exact_sum_of_the_survivors(stage: str) -> None:
    # 5 nodes, complete graph: 5 share holders, t = 3, so 2 may drop.
    result, _ = run(NODES, drop_at={stage: {22, 44}})
    assert result.failure is None, result.failure
    if stage == messages.SECAGG_UNMASK:
        assert result.used == NODES  # their vectors arrived; their self-masks come from shares
    else:
        assert result.used == [11, 33, 55]
    assert_exact(result)


def test_dropouts_below_the_threshold_fail_the_session_loudly() -> None:
    result, _ = run(NODES, drop_at={messages.SECAGG_UNMASK: {22, 33, 44}})
    assert result.sums is None
    assert "shares needed" in result.failure and "threshold" in result.failure


def test_too_few_contributors_fail_the_session_with_the_setting_to_change() -> None:
    result, _ = run(NODES, drop_at={messages.SECAGG_SHARE_KEYS: {11, 22, 33, 44}})
    assert result.sums is None and "federation.min_train_nodes" in result.failure


def test_a_sparse_neighbourhood_graph_gives_the_same_sum() -> None:
    nodes = list(range(100, 109))
    sparse = dataclasses.replace(BASE, neighbours=4)
    result, _ = run(nodes, secagg=sparse, drop_at={messages.SECAGG_TRAIN: {103}})
    assert result.used == [node for node in nodes if node != 103]
    assert_exact(result, sparse)


@given(
    count=st.integers(3, 7),
    drops=st.data(),
    bits=st.integers(8, 20),
    clip=st.floats(0.05, 50.0),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_any_tolerated_dropouts_give_the_exact_survivor_sum(count, drops, bits, clip) -> None:
    nodes = list(range(1, count + 1))
    secagg = dataclasses.replace(BASE, quantization_bits=bits, clip_range=clip)
    tolerated = count - session.threshold(count, secagg.threshold)
    dropped = drops.draw(st.lists(st.sampled_from(nodes), unique=True, max_size=tolerated))
    stage = drops.draw(st.sampled_from([messages.SECAGG_SHARE_KEYS, messages.SECAGG_TRAIN, messages.SECAGG_UNMASK]))
    result, _ = run(nodes, secagg=secagg, drop_at={stage: set(dropped)})
    survivors = nodes if stage == messages.SECAGG_UNMASK else [node for node in nodes if node not in dropped]
    assert result.used == survivors
    assert_exact(result, secagg)


def test_a_tampered_masked_vector_is_detected_and_its_node_treated_as_dropped() -> None:
    def flip_a_value(node_id: int, reply: Message) -> None:
        if node_id == 33 and messages.MASKED_ARRAYS in reply.content:
            vector = reply.content[messages.MASKED_ARRAYS]["y"].numpy().copy()
            vector[0] ^= 1
            reply.content[messages.MASKED_ARRAYS]["y"] = Array(vector)

    result, _ = run(NODES, tamper=flip_a_value)
    assert result.used == [11, 22, 44, 55]
    assert_exact(result)


def test_a_share_box_altered_on_the_way_is_refused_by_its_receiver_and_the_sum_stays_exact() -> None:
    def corrupt_a_box(node_id: int, message: Message) -> None:
        if node_id == 44 and message.metadata.message_type == messages.SECAGG_TRAIN:
            record = message.content[messages.PEERS_RECORD]
            boxes = [bytes(box) for box in record["boxes"]]
            boxes[0] = boxes[0][:-1] + bytes([boxes[0][-1] ^ 0x01])
            message.content[messages.PEERS_RECORD] = ConfigRecord({**dict(record), "boxes": boxes})

    result, grid = run(NODES, tamper_instruction=corrupt_a_box)
    refusal = replies_to(grid, messages.SECAGG_TRAIN)[44]
    assert refusal.has_error() and "not the one its sender signed" in refusal.error.reason
    assert result.used == [11, 22, 33, 55]
    assert_exact(result)


def test_a_tampered_key_confirmation_keeps_the_node_out() -> None:
    def wrong_confirmation(node_id: int, reply: Message) -> None:
        if node_id == 55 and messages.KEYS_RECORD in reply.content:
            record = reply.content[messages.KEYS_RECORD]
            reply.content[messages.KEYS_RECORD] = ConfigRecord({**dict(record), "confirm": bytes(32)})

    result, _ = run(NODES, tamper=wrong_confirmation)
    assert result.used == [11, 22, 33, 44]
    assert_exact(result)


def test_the_server_sees_nothing_that_equals_or_correlates_with_a_contribution() -> None:
    result, grid = run(NODES)
    layout = layout_for(BASE, len(NODES))
    contributions = {node: layout.encode(known_values(node, BASE.clip_range)).vector for node in NODES}
    seen_vectors = [
        array.numpy() for reply in grid.received if reply.has_content()
        for record in reply.content.array_records.values() for array in record.values()
    ]
    assert len(seen_vectors) == len(NODES)  # exactly one (masked) vector per node
    for vector in seen_vectors:
        for contribution in contributions.values():
            assert not np.array_equal(vector, contribution)
            correlation = np.corrcoef(vector.astype(np.float64), contribution.astype(np.float64))[0, 1]
            assert abs(correlation) < 0.3
    # No reply carries a plaintext count or metric.
    assert all(not reply.content.metric_records for reply in grid.received if reply.has_content())
    assert_exact(result)


def test_a_node_signs_one_cohort_per_round_and_reveals_only_for_the_cohort_it_signed() -> None:
    app_nodes = [1, 2, 3]
    result, grid = run(app_nodes, drop_at={messages.SECAGG_UNMASK: {1, 2, 3}}, min_nodes=2)
    assert result.sums is None
    context = grid.contexts[1]
    round_id = bytes(context.state["secagg-round"]["round-id"])
    kit, info = node_kit(context.node_config), ConfigRecord({"label": "node-1"})

    def request(record: str, fields: dict, message_type: str) -> Message:
        message = Message(RecordDict({record: ConfigRecord({"round-id": round_id, **fields})}), dst_node_id=1,
                          message_type=message_type)
        message.metadata.__dict__["_message_id"] = "m"
        return message

    signed = request(messages.COHORT_RECORD, {"cohort": ids_to_bytes(app_nodes)}, messages.SECAGG_CONSISTENCY)
    assert secagg_node.sign_cohort(signed, context, kit, info).has_content()
    other = ids_to_bytes([1, 2])
    with pytest.raises(secagg_node.ProtocolViolation, match="already signed another cohort"):
        secagg_node.sign_cohort(
            request(messages.COHORT_RECORD, {"cohort": other}, messages.SECAGG_CONSISTENCY), context, kit, info
        )
    unmask = request(messages.UNMASK_RECORD, {"cohort": other, "signers": b"", "signatures": [b""]},
                     messages.SECAGG_UNMASK)
    with pytest.raises(secagg_node.ProtocolViolation, match="did not sign that cohort"):
        secagg_node.unmask(unmask, context, BASE, kit, info)


def replies_to(grid, stage: str) -> dict[int, Message]:
    return {reply.metadata.src_node_id: reply for reply in grid.received if reply.metadata.message_type == stage}


def test_a_node_given_too_few_peers_refuses_to_mask_so_its_self_mask_alone_never_hides_it() -> None:
    # Attack A: no peers, so the node would mask with its self-mask only, which its holders then reveal.
    def no_peers_for_33(node_id: int, message: Message) -> None:
        if node_id == 33 and message.metadata.message_type == messages.SECAGG_TRAIN:
            record = message.content[messages.PEERS_RECORD]
            message.content[messages.PEERS_RECORD] = ConfigRecord({**dict(record), "peers": b"", "s-pks": [b""]})

    result, grid = run(NODES, tamper_instruction=no_peers_for_33)
    refusal = replies_to(grid, messages.SECAGG_TRAIN)[33]
    assert refusal.has_error() and "ProtocolViolation" in refusal.error.reason
    assert result.used == [11, 22, 44, 55]
    assert_exact(result)


def test_nodes_refuse_to_unmask_when_the_server_names_fewer_used_than_the_threshold() -> None:
    # Attack B: "only 33 was used, its neighbours dropped" would reveal 33's self-mask and every mask key.
    target = 33

    def single_out_the_target(node_id: int, message: Message) -> None:
        if message.metadata.message_type == messages.SECAGG_UNMASK:
            record = message.content[messages.UNMASK_RECORD]
            message.content[messages.UNMASK_RECORD] = ConfigRecord({**dict(record), "cohort": ids_to_bytes([target])})

    result, grid = run(NODES, tamper_instruction=single_out_the_target)
    reveals = replies_to(grid, messages.SECAGG_UNMASK)
    assert sorted(reveals) == NODES
    assert all(reply.has_error() and "did not sign that cohort" in reply.error.reason for reply in reveals.values())
    assert result.sums is None


def test_a_node_masks_only_one_vector_per_round() -> None:
    result, grid = run(NODES, drop_at={messages.SECAGG_UNMASK: set(NODES)})
    assert result.sums is None  # the round state stays on the nodes
    instruction = next(
        message for message in grid.delivered
        if message.metadata.dst_node_id == 11 and message.metadata.message_type == messages.SECAGG_TRAIN
    )
    vector = layout_for(BASE, len(NODES)).encode(known_values(11, BASE.clip_range)).vector
    with pytest.raises(secagg_node.ProtocolViolation, match="already sent"):
        context = grid.contexts[11]
        secagg_node.masked(instruction, context, node_kit(context.node_config), vector, ConfigRecord({"label": "n"}))


def test_more_participants_than_the_layout_allows_fail_the_session_naming_the_setting() -> None:
    result, grid = run(NODES, max_contributors=len(NODES) - 1)
    assert result.sums is None and "federation.num_nodes=4" in result.failure
    assert not replies_to(grid, messages.SECAGG_SHARE_KEYS)  # nothing was sent


@given(
    nodes=st.integers(2, 6),
    values=st.integers(1, 3000),
    bits=st.integers(12, 22),
    clip=st.sampled_from([0.05, 0.5, 1.0, 4.0]),
    # At least every node's example count (100-200 here): a larger count would be capped.
    max_weight=st.sampled_from([200, 1000, 10000]),
)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_the_secure_round_gives_the_plaintext_weighted_mean_within_its_bound(
    nodes, values, bits, clip, max_weight
) -> None:
    from flwr.app import Context

    from experiments.secure_bench_apps import BenchRun, fixed_update_apps
    from fl_protocol.run_config import load_settings

    run_settings = load_settings(
        [
            f"federation.num_nodes={nodes}", "federation.num_rounds=1", "federation.round_timeout_s=5",
            f"secure.secagg.quantization_bits={bits}", f"secure.secagg.clip_range={clip}",
            f"secure.secagg.max_weight={max_weight}", "tracking.enabled=false",
        ]
    )
    coordinator_kit, node_configs = shared_node_kits([700 + node for node in range(nodes)])
    run_settings = dataclasses.replace(run_settings, kit=str(coordinator_kit.path))
    run = BenchRun()
    server, client = fixed_update_apps(run_settings, values, spread=clip, run=run)
    grid = InProcessGrid(client, node_configs, {})
    server(grid, Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={}))
    (measured,) = run.rounds
    assert measured.failure is None
    assert measured.max_abs_error <= run.error_bound * (1 + 1e-9)
