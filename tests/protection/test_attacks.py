"""Attacks on secure aggregation by a coordinator (or node) that does not follow the protocol.

Each test plays the attacker against the real node and server code and shows that the
attack fails: the node refuses, or the round fails loudly, and no secret, update or
count of a single node is recovered. The attacker holds what a malicious coordinator
holds: the coordinator's kit and every message; never a node's kit.
"""

from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict

from fl_client.protection import secagg as secagg_node
from fl_protocol.identity.kits import provision_simulation
from fl_protocol.protection import messages
from fl_protocol.protection.secagg import keys, session
from fl_protocol.protection.secagg.wire import ids_from_bytes, ids_to_bytes
from fl_protocol.settings import SecAggSettings
from fl_server.kit import CoordinatorKit, load_coordinator_kit
from fl_server.node_exchange import NodeExchange
from fl_server.protection.secagg_keys import SecAggRunKeys
from fl_server.protection.secagg_session import run_session
from tests.support.inprocess_grid import InProcessGrid
from tests.support.kits import SMALL_FEDERATION_POLICY, provision_nodes
from tests.support.known_contributions import known_contributions_app, known_values, layout_for

pytestmark = pytest.mark.attack

NODES = [11, 22, 33, 44, 55]
VICTIM = NODES[0]
SETTINGS = SecAggSettings(
    neighbours=None, threshold=0.6, quantization_bits=16, clip_range=1.0, max_weight=1000, metric_bound=100.0
)


class Coordinator:
    """The federation's coordinator turned attacker: its own kit, a grid of real nodes."""

    def __init__(self, folder: Path, app=None, nodes: list[int] = NODES, policy=None) -> None:  # type: ignore[no-untyped-def]
        self.nodes = nodes
        self.kit, configs = provision_nodes(folder, nodes, policy)
        self.grid = InProcessGrid(app or known_contributions_app(SETTINGS, len(nodes)), configs, {})
        self.exchange = NodeExchange(self.grid, timeout_s=0.2)
        self.run_keys = SecAggRunKeys(self.kit)
        assert self.run_keys.ensure_setup(self.exchange, nodes) == set(nodes)

    def ask(self, node: int, message_type: str, records: dict[str, ConfigRecord]) -> Message:
        message = Message(RecordDict(records), dst_node_id=node, message_type=message_type)
        (reply,) = self.grid.send_and_receive([message])
        return reply

    def round_record(self, round_id: bytes, participants: list[int]) -> ConfigRecord:
        """Stage 1 as an honest server words it, for `participants` of the attacker's choice."""
        return ConfigRecord(
            {
                "round-id": round_id,
                "participants": ids_to_bytes(participants),
                "c-pks": [self.run_keys.c_pk(node) for node in participants],
                "names": [self.run_keys.node(node).name for node in participants],
                "c-sigs": [self.run_keys.node(node).signature for node in participants],
                "degree": 0,
            }
        )

    def share_keys(self, round_id: bytes, participants: list[int], ask: list[int] | None = None) -> dict[int, Message]:
        record = self.round_record(round_id, participants)
        return {
            node: self.ask(node, messages.SECAGG_SHARE_KEYS, {messages.ROUND_RECORD: record})
            for node in (participants if ask is None else ask)
        }

    def masked(self, round_id: bytes, node: int, shares: dict[int, ConfigRecord], **replace: list) -> Message:
        """Stage 2 to `node` with its peers' keys and boxes from `shares`; `replace` swaps fields."""
        peers = sorted(peer for peer in shares if peer != node)
        senders = [peer for peer in peers if node in ids_from_bytes(bytes(shares[peer]["box-to"]))]
        fields = {
            "round-id": round_id,
            "peers": ids_to_bytes(peers),
            "s-pks": [bytes(shares[peer]["s-pk"]) for peer in peers],
            "s-sigs": [bytes(shares[peer]["s-sig"]) for peer in peers],
            "peer-thresholds": [int(shares[peer]["threshold"]) for peer in peers],
            "peer-commits": [bytes(shares[peer]["b-commit"]) for peer in peers],
            "box-from": ids_to_bytes(senders),
            "boxes": [_box(shares[sender], node) for sender in senders],
        }
        fields.update(replace)
        return self.ask(node, messages.SECAGG_TRAIN, {messages.PEERS_RECORD: ConfigRecord(fields)})

    def unmask(self, round_id: bytes, node: int, used: list[int], dropped: list[int]) -> Message:
        record = ConfigRecord(
            {
                "round-id": round_id,
                "used": ids_to_bytes(used),
                "dropped": ids_to_bytes(dropped),
                "cohort": ids_to_bytes(used),
            }
        )
        return self.ask(node, messages.SECAGG_UNMASK, {messages.UNMASK_RECORD: record})


def _box(shares: ConfigRecord, receiver: int) -> bytes:
    receivers = ids_from_bytes(bytes(shares["box-to"]))
    return bytes(shares["boxes"][receivers.index(receiver)])


def _shares(replies: dict[int, Message]) -> dict[int, ConfigRecord]:
    return {node: reply.content[messages.SHARES_RECORD] for node, reply in replies.items() if reply.has_content()}


def _refusal(reply: Message) -> str:
    assert reply.has_error(), "the node answered instead of refusing"
    return reply.error.reason


def _revealed_any_share(grid: InProcessGrid, owner: int) -> bool:
    for reply in grid.received:
        if reply.has_content() and messages.REVEAL_RECORD in reply.content:
            record = reply.content[messages.REVEAL_RECORD]
            if owner in ids_from_bytes(bytes(record["seed-from"])) + ids_from_bytes(bytes(record["key-from"])):
                return True
    return False


@pytest.mark.parametrize("participants", [[VICTIM], [VICTIM, NODES[1]], [VICTIM, NODES[1], NODES[2]]])
def test_lone_participant_a_node_given_fewer_peers_than_its_policy_draws_no_secret(
    tmp_path: Path, participants: list[int]
) -> None:
    coordinator = Coordinator(tmp_path)
    reply = coordinator.share_keys(b"r" * 16, participants, ask=[VICTIM])[VICTIM]
    assert "secure.min_peers" in _refusal(reply)
    # Nothing to reveal afterwards: the node holds no secret of that round.
    unmask = coordinator.unmask(b"r" * 16, VICTIM, used=[VICTIM], dropped=[])
    assert "no secrets for that round" in _refusal(unmask)
    assert not _revealed_any_share(coordinator.grid, VICTIM)


def test_lone_participant_a_whole_session_naming_the_victim_alone_fails_and_reveals_nothing(tmp_path: Path) -> None:
    coordinator = Coordinator(tmp_path)
    result = run_session(
        coordinator.exchange, coordinator.run_keys, SETTINGS, layout_for(SETTINGS, len(NODES)), RecordDict(),
        messages.SECAGG_TRAIN, [VICTIM], 1,
    )
    assert result.sums is None and result.failure
    assert not _revealed_any_share(coordinator.grid, VICTIM)


def test_round_id_replay_a_repeated_round_id_is_refused_so_old_boxes_never_open(tmp_path: Path) -> None:
    coordinator = Coordinator(tmp_path)
    round_id = b"R" * 16
    # Round 1, honest: every node shares its keys and sends its masked vector.
    shares = _shares(coordinator.share_keys(round_id, NODES))
    assert set(shares) == set(NODES)
    for node in NODES:
        assert coordinator.masked(round_id, node, shares).has_content()
    honest = [coordinator.unmask(round_id, node, used=NODES, dropped=[]) for node in NODES]
    assert all(reply.has_content() for reply in honest)
    # "Round 2" reuses round 1's id without the victim, and replays the victim's old boxes.
    others = NODES[1:]
    for node, reply in coordinator.share_keys(round_id, NODES, ask=others).items():
        assert "answered once" in _refusal(reply)
    for node in others:
        assert "no secrets for that round" in _refusal(coordinator.masked(round_id, node, shares))
        unmask = coordinator.unmask(round_id, node, used=others, dropped=[VICTIM])
        assert "no secrets for that round" in _refusal(unmask)
    key_shares = [
        reply for reply in coordinator.grid.received
        if reply.has_content() and messages.REVEAL_RECORD in reply.content
        and VICTIM in ids_from_bytes(bytes(reply.content[messages.REVEAL_RECORD]["key-from"]))
    ]
    assert key_shares == []


def test_mask_key_substitution_a_node_refuses_peer_mask_keys_its_roster_did_not_sign(tmp_path: Path) -> None:
    coordinator = Coordinator(tmp_path)
    round_id = b"S" * 16
    shares = _shares(coordinator.share_keys(round_id, NODES))
    peers = [node for node in NODES if node != VICTIM]
    server_made = [keys.public_bytes(keys.new_private_key()) for _ in peers]
    # The server's own mask keys, with the peers' real signatures, or signed with the coordinator's key.
    for signatures in (
        [bytes(shares[peer]["s-sig"]) for peer in peers],
        [coordinator.kit.identity.sign(*session.round_keys_signed(round_id, peer, pk, 3, bytes(32)))
         for peer, pk in zip(peers, server_made)],
    ):
        reply = coordinator.masked(round_id, VICTIM, shares, **{"s-pks": server_made, "s-sigs": signatures})
        assert "not signed by its roster key" in _refusal(reply)
    assert not any(
        reply.has_content() and messages.MASKED_ARRAYS in reply.content and reply.metadata.src_node_id == VICTIM
        for reply in coordinator.grid.received
    )


def test_encryption_key_substitution_a_node_refuses_a_round_listing_a_peer_key_its_roster_did_not_sign(
    tmp_path: Path,
) -> None:
    coordinator = Coordinator(tmp_path)
    record = coordinator.round_record(b"C" * 16, NODES)
    c_pks = [bytes(pk) for pk in record["c-pks"]]
    c_pks[1] = keys.public_bytes(keys.new_private_key())  # the server stands in for a peer
    record["c-pks"] = c_pks
    reply = coordinator.ask(VICTIM, messages.SECAGG_SHARE_KEYS, {messages.ROUND_RECORD: record})
    assert "not signed by its roster key" in _refusal(reply)
    # Naming one roster member twice (two node ids for one signature) is refused too.
    record = coordinator.round_record(b"D" * 16, NODES)
    record["names"] = [str(record["names"][0])] + [str(name) for name in record["names"]][:-1]
    reply = coordinator.ask(VICTIM, messages.SECAGG_SHARE_KEYS, {messages.ROUND_RECORD: record})
    assert "more than one node" in _refusal(reply)


def test_server_key_substitution_a_node_refuses_a_run_key_its_roster_coordinator_did_not_sign(tmp_path: Path) -> None:
    honest = Coordinator(tmp_path / "federation")
    stranger: CoordinatorKit = load_coordinator_kit(
        provision_simulation(tmp_path / "other", "other-federation", 1).coordinator
    )
    impostor = SecAggRunKeys(stranger)  # signed by a coordinator key that is not in the nodes' roster
    swapped = SecAggRunKeys(honest.kit)
    swapped.public = impostor.public  # the honest signature over another key
    for run_keys in (impostor, swapped):
        record = ConfigRecord(
            {"run-key-id": run_keys.run_key_id, "server-pk": run_keys.public, "server-sig": run_keys.signature}
        )
        reply = honest.ask(VICTIM, messages.SECAGG_SETUP, {messages.SETUP_RECORD: record})
        assert "not signed by the coordinator key of this node's roster" in _refusal(reply)
        assert run_keys.ensure_setup(honest.exchange, NODES) == set()


def lying_holder_app(liar: int, lied: list[int]):  # type: ignore[no-untyped-def]
    """The known-contributions app, except that node `liar` reveals wrong shares (validly tagged)."""

    def lie(request: Message, context: Context, reply: Message) -> Message:
        if context.node_id != liar:
            return reply
        record = reply.content[messages.REVEAL_RECORD]
        owners = ids_from_bytes(bytes(record["seed-from"]))
        seed_ys = [(int.from_bytes(bytes(y), "big") + 1).to_bytes(len(bytes(y)), "big") for y in record["seed-shares"]]
        key_ys = [bytes(y) for y in record["key-shares"]][: len(ids_from_bytes(bytes(record["key-from"])))]
        record["seed-shares"] = seed_ys
        record["tag"] = keys.tag(
            secagg_node.auth_key(context), b"unmask", bytes(request.content[messages.UNMASK_RECORD]["round-id"]),
            bytes(record["seed-from"]), *seed_ys[: len(owners)], bytes(record["key-from"]), *key_ys,
        )
        lied.append(context.node_id)
        return reply

    return known_contributions_app(SETTINGS, len(NODES), alter_reveal=lie)


def test_wrong_share_a_holder_revealing_wrong_shares_is_outvoted_and_the_sum_stays_exact(tmp_path: Path) -> None:
    lied: list[int] = []
    coordinator = Coordinator(tmp_path, app=lying_holder_app(NODES[2], lied))
    result = run_session(
        coordinator.exchange, coordinator.run_keys, SETTINGS, layout_for(SETTINGS, len(NODES)), RecordDict(),
        messages.SECAGG_TRAIN, NODES, 2,
    )
    assert lied == [NODES[2]] and result.counts["dropped-at-unmask"] == 0  # its lie was taken in, not dropped
    assert result.failure is None and result.used == NODES
    expected = np.sum([known_values(node, SETTINGS.clip_range)["update"] for node in NODES], axis=0)
    assert np.max(np.abs(result.sums["update"] - expected)) <= layout_for(SETTINGS, 1).step("update") * len(NODES)


def test_wrong_share_too_few_honest_shares_fail_the_round_loudly_never_the_run(tmp_path: Path) -> None:
    nodes = NODES[:3]  # 3 holders, threshold 2: one honest share besides the liar's is not enough to outvote it
    lied: list[int] = []
    coordinator = Coordinator(tmp_path, app=lying_holder_app(nodes[1], lied), nodes=nodes,
                              policy=SMALL_FEDERATION_POLICY)
    dropping = nodes[2]
    coordinator.grid._drop = lambda node, message: (  # noqa: SLF001
        node == dropping and message.metadata.message_type == messages.SECAGG_UNMASK
    )
    result = run_session(
        coordinator.exchange, coordinator.run_keys, SETTINGS, layout_for(SETTINGS, len(nodes)), RecordDict(),
        messages.SECAGG_TRAIN, nodes, 2,
    )
    assert lied == [nodes[1]] and result.sums is None
    assert "rebuild the secret" in str(result.failure)
