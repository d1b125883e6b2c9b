"""Attacks on secure aggregation by a coordinator (or node) that does not follow the protocol.

Each test plays the attacker against the real node and server code and shows that the
attack fails: the node refuses, or the round fails loudly, and no secret, update or
count of a single node is recovered. The attacker holds what a malicious coordinator
holds: the coordinator's kit and every message; never a node's kit.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid

from fl_client.kit import node_kit
from fl_client.protection import secagg as secagg_node
from fl_protocol import packed_content
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
        kit, configs = provision_nodes(folder, nodes, policy)
        self._start(InProcessGrid(app or known_contributions_app(SETTINGS, len(nodes)), configs, {}), kit, nodes, 0.2)

    @classmethod
    def on(cls, grid: Grid, kit: CoordinatorKit, nodes: list[int], timeout_s: float) -> "Coordinator":
        """The attacker on a grid of real nodes it did not start (Flower's simulation engine)."""
        coordinator = cls.__new__(cls)
        coordinator._start(grid, kit, nodes, timeout_s)
        return coordinator

    def _start(self, grid: Grid, kit: CoordinatorKit, nodes: list[int], timeout_s: float) -> None:
        self.nodes, self.kit, self.grid = nodes, kit, grid
        self.exchange = NodeExchange(grid, timeout_s=timeout_s)
        self.run_keys = SecAggRunKeys(kit)
        assert self.run_keys.ensure_setup(self.exchange, nodes) == set(nodes)

    def ask(self, node: int, message_type: str, records: dict[str, ConfigRecord]) -> Message:
        message = Message(RecordDict(records), dst_node_id=node, message_type=message_type)
        (reply,) = self.grid.send_and_receive([message])
        if reply.has_content():  # the attacker reads the wire format as the honest server does
            reply.content = packed_content.unpack(reply.content)
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

    def masked(self, round_id: bytes, node: int, shares: dict[int, ConfigRecord], **replace: object) -> Message:
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
            "box-sigs": [_box(shares[sender], node, "box-sigs") for sender in senders],
        }
        fields.update(replace)
        return self.ask(node, messages.SECAGG_TRAIN, {messages.PEERS_RECORD: ConfigRecord(fields)})

    def sign_cohort(self, round_id: bytes, cohort: list[int], ask: list[int] | None = None) -> dict[int, Message]:
        """Stage 3: ask nodes (`ask`, else the cohort) to sign `cohort`."""
        record = ConfigRecord({"round-id": round_id, "cohort": ids_to_bytes(cohort)})
        return {
            node: self.ask(node, messages.SECAGG_CONSISTENCY, {messages.COHORT_RECORD: record})
            for node in (cohort if ask is None else ask)
        }

    def unmask(
        self, round_id: bytes, node: int, cohort: list[int], signatures: dict[int, Message] | None = None,
        signed: dict[int, bytes] | None = None, ahead: ConfigRecord | None = None,
    ) -> Message:
        """Stage 4 to `node` for `cohort`, with the signatures the nodes gave at stage 3 (or `signed`),
        and (`ahead`) a next round's stage-1 request riding on it."""
        signed = dict(signed or {})
        signed.update({
            signer: bytes(reply.content[messages.COHORT_SIGNATURE]["signature"])
            for signer, reply in (signatures or {}).items() if reply.has_content()
        })
        record = ConfigRecord(
            {
                "round-id": round_id,
                "cohort": ids_to_bytes(cohort),
                "signers": ids_to_bytes(sorted(signed)),
                "signatures": [signed[signer] for signer in sorted(signed)] or [b""],
            }
        )
        ahead_record = {messages.ROUND_RECORD: ahead} if ahead is not None else {}
        return self.ask(node, messages.SECAGG_UNMASK, {messages.UNMASK_RECORD: record, **ahead_record})


def masked_round(folder: Path, round_id: bytes, masking: list[int]) -> tuple[Coordinator, dict[int, ConfigRecord]]:
    """An honest coordinator's stages 1 and 2 for every node (masked vectors from `masking`): the
    attacker's starting point."""
    coordinator = Coordinator(folder)
    shares = _shares(coordinator.share_keys(round_id, NODES))
    for node in masking:
        assert coordinator.masked(round_id, node, shares).has_content()
    return coordinator, shares


def _box(shares: ConfigRecord, receiver: int, field: str = "boxes") -> bytes:
    receivers = ids_from_bytes(bytes(shares["box-to"]))
    return bytes(shares[field][receivers.index(receiver)])


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
    assert _refusal(reply).endswith("refused: policy min-peers")
    # Nothing to reveal afterwards: the node holds no secret of that round.
    unmask = coordinator.unmask(b"r" * 16, VICTIM, cohort=[VICTIM])
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
    round_id = b"R" * 16
    # Round 1, honest: every node shares its keys and sends its masked vector.
    coordinator, shares = masked_round(tmp_path, round_id, NODES)
    assert set(shares) == set(NODES)
    signatures = coordinator.sign_cohort(round_id, NODES)
    honest = [coordinator.unmask(round_id, node, NODES, signatures) for node in NODES]
    assert all(reply.has_content() for reply in honest)
    # "Round 2" reuses round 1's id without the victim, and replays the victim's old boxes.
    others = NODES[1:]
    for node, reply in coordinator.share_keys(round_id, NODES, ask=others).items():
        assert "answered once" in _refusal(reply)
    for node in others:
        assert "no secrets for that round" in _refusal(coordinator.masked(round_id, node, shares))
        assert "no secrets for that round" in _refusal(coordinator.sign_cohort(round_id, others, ask=[node])[node])
        assert "no secrets for that round" in _refusal(coordinator.unmask(round_id, node, others, signatures))
    key_shares = [
        reply for reply in coordinator.grid.received
        if reply.has_content() and messages.REVEAL_RECORD in reply.content
        and VICTIM in ids_from_bytes(bytes(reply.content[messages.REVEAL_RECORD]["key-from"]))
    ]
    assert key_shares == []


def test_keys_ahead_a_next_round_riding_on_unmasking_faces_every_check_of_stage_1(tmp_path: Path) -> None:
    round_id = b"K" * 16
    coordinator, shares = masked_round(tmp_path, round_id, NODES)
    fast = {node: bytes(shares[node]["cohort-sig"]) for node in NODES}  # all signed all participants at stage 1
    # Riding on an honest unmasking: a lone-participant round, this very round's id again, a
    # roster member listed twice. The node reveals for this round (its due) and draws no secret.
    for node, ahead in (
        (VICTIM, coordinator.round_record(b"L" * 16, [VICTIM])),
        (NODES[1], coordinator.round_record(round_id, NODES)),
        (NODES[2], coordinator.round_record(b"M" * 16, [*NODES, NODES[0]])),
    ):
        reply = coordinator.unmask(round_id, node, NODES, signed=fast, ahead=ahead)
        assert messages.REVEAL_RECORD in reply.content
        assert messages.SHARES_RECORD not in reply.content
    # An honest next round ahead is answered, and its id only once, however it comes again.
    reply = coordinator.unmask(round_id, NODES[3], NODES, signed=fast, ahead=coordinator.round_record(b"N" * 16, NODES))
    assert messages.SHARES_RECORD in reply.content
    assert "answered once" in _refusal(coordinator.share_keys(b"N" * 16, NODES, ask=[NODES[3]])[NODES[3]])
    # A second unmasking of the round, to ride another round in on: refused whole.
    again = coordinator.unmask(round_id, NODES[3], NODES, signed=fast, ahead=coordinator.round_record(b"O" * 16, NODES))
    assert "no secrets for that round" in _refusal(again)


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


def lying_app(liar: int, record_name: str, rewrite: Callable[[Message, Context, RecordDict], None]):  # type: ignore[no-untyped-def]
    """The known-contributions app, except that node `liar` rewrites its replies that hold
    `record_name` (`rewrite(request, context, content)`), signing and tagging as it likes."""

    def lie(request: Message, context: Context, reply: Message) -> Message:
        if context.node_id == liar and record_name in reply.content:
            rewrite(request, context, reply.content)
        return reply

    return known_contributions_app(SETTINGS, len(NODES), alter=lie)


def lying_holder_app(liar: int, lied: list[int]):  # type: ignore[no-untyped-def]
    """Node `liar` reveals wrong shares (validly tagged)."""

    def lie(request: Message, context: Context, content: RecordDict) -> None:
        record = content[messages.REVEAL_RECORD]
        owners = ids_from_bytes(bytes(record["seed-from"]))
        seed_ys = [(int.from_bytes(bytes(y), "big") + 1).to_bytes(len(bytes(y)), "big") for y in record["seed-shares"]]
        key_ys = [bytes(y) for y in record["key-shares"]][: len(ids_from_bytes(bytes(record["key-from"])))]
        record["seed-shares"] = seed_ys
        record["tag"] = keys.tag(
            secagg_node.auth_key(context), b"unmask", bytes(request.content[messages.UNMASK_RECORD]["round-id"]),
            bytes(record["seed-from"]), *seed_ys[: len(owners)], bytes(record["key-from"]), *key_ys,
        )
        lied.append(context.node_id)

    return lying_app(liar, messages.REVEAL_RECORD, lie)


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


def false_accuser_app(accuser: int):  # type: ignore[no-untyped-def]
    """Node `accuser` opens every box fine, then accuses every neighbour (validly signed and tagged)."""

    def accuse(request: Message, context: Context, content: RecordDict) -> None:
        record = content[messages.MASKED_RECORD]
        round_id = bytes(request.content[messages.PEERS_RECORD]["round-id"])
        accused = ids_from_bytes(bytes(request.content[messages.PEERS_RECORD]["box-from"]))
        identity = node_kit(context.node_config).identity
        accusations = [identity.sign(*session.accusation_signed(round_id, accuser, node)) for node in accused]
        vector = content[messages.MASKED_ARRAYS]["y"].numpy()
        record["bad-senders"] = ids_to_bytes(accused)
        record["accusations"] = accusations
        record["tag"] = keys.tag(
            secagg_node.auth_key(context), b"masked", round_id, keys.digest(vector.tobytes()),
            ids_to_bytes(accused), *accusations, (0).to_bytes(8, "big"),
        )

    return lying_app(accuser, messages.MASKED_RECORD, accuse)


def bad_box_app(sender: int, receiver: int):  # type: ignore[no-untyped-def]
    """Node `sender` seals garbage for `receiver`, signed and tagged as its real box."""

    def garble(request: Message, context: Context, content: RecordDict) -> None:
        record = content[messages.SHARES_RECORD]
        round_id = bytes(request.content[messages.ROUND_RECORD]["round-id"])
        receivers = ids_from_bytes(bytes(record["box-to"]))
        boxes = [bytes(box) for box in record["boxes"]]
        signatures = [bytes(sig) for sig in record["box-sigs"]]
        index = receivers.index(receiver)
        boxes[index] = boxes[index][:-1] + bytes([boxes[index][-1] ^ 1])
        signatures[index] = node_kit(context.node_config).identity.sign(
            *session.box_signed(round_id, sender, receiver, boxes[index])
        )
        record["boxes"], record["box-sigs"] = boxes, signatures
        _retag_shares(context, round_id, record)

    return lying_app(sender, messages.SHARES_RECORD, garble)


def _retag_shares(context: Context, round_id: bytes, record: ConfigRecord) -> None:
    """The liar's own tag over its rewritten stage-1 reply (it holds its auth key)."""
    boxes = [bytes(box) for box in record["boxes"]]
    record["tag"] = keys.tag(
        secagg_node.auth_key(context), b"share-keys", round_id, bytes(record["s-pk"]), bytes(record["box-to"]), *boxes
    )


def _exact(result, nodes: list[int]) -> bool:  # type: ignore[no-untyped-def]
    expected = np.sum([known_values(node, SETTINGS.clip_range)["update"] for node in nodes], axis=0)
    step = layout_for(SETTINGS, 1).step("update")
    return bool(np.max(np.abs(result.sums["update"] - expected)) <= step * len(nodes))


def session_of(coordinator: Coordinator, nodes: list[int] = NODES):  # type: ignore[no-untyped-def]
    return run_session(
        coordinator.exchange, coordinator.run_keys, SETTINGS, layout_for(SETTINGS, len(nodes)), RecordDict(),
        messages.SECAGG_TRAIN, nodes, 2,
    )


def test_false_accusations_a_node_accusing_every_neighbour_is_the_one_dropped(tmp_path: Path) -> None:
    """Finding 7: one node accusing its six neighbours emptied the round; two such rounds stopped the run."""
    accuser = NODES[1]
    coordinator = Coordinator(tmp_path, app=false_accuser_app(accuser))
    for _ in range(2):  # round after round: the accuser never takes the others out
        result = session_of(coordinator)
        assert result.failure is None, result.failure
        assert result.used == [node for node in NODES if node != accuser]
        assert result.counts["dropped-at-dispute"] == 1
        assert _exact(result, result.used)


def test_false_accusations_a_node_sealing_a_bad_box_is_dropped_when_its_receiver_accuses_it(tmp_path: Path) -> None:
    sender, receiver = NODES[2], NODES[3]
    coordinator = Coordinator(tmp_path, app=bad_box_app(sender, receiver))
    result = session_of(coordinator)
    assert result.failure is None, result.failure
    assert result.used == [node for node in NODES if node != sender]
    assert _exact(result, result.used)


def test_false_accusations_a_node_reveals_a_box_key_only_for_an_accusation_its_receiver_signed(
    tmp_path: Path,
) -> None:
    """Else a server could ask for every box's key and open the victim's shares itself."""
    round_id = b"A" * 16
    coordinator, _ = masked_round(tmp_path, round_id, [VICTIM])
    receiver = NODES[1]
    forged = coordinator.kit.identity.sign(*session.accusation_signed(round_id, receiver, VICTIM))
    record = ConfigRecord({"round-id": round_id, "accusers": ids_to_bytes([receiver]), "accusations": [forged]})
    reply = coordinator.ask(VICTIM, messages.SECAGG_DISPUTE, {messages.DISPUTE_RECORD: record})
    assert "did not sign an accusation" in _refusal(reply)


def test_split_view_a_server_telling_nodes_different_cohorts_never_gets_both_secrets_of_a_node(
    tmp_path: Path,
) -> None:
    """The consistency round: the victim is told it is in the sum, the others that it dropped."""
    round_id = b"V" * 16
    coordinator, _ = masked_round(tmp_path, round_id, NODES)
    others = NODES[1:]
    victim_view = coordinator.sign_cohort(round_id, NODES, ask=[VICTIM])
    others_view = coordinator.sign_cohort(round_id, others)
    assert all(reply.has_content() for reply in [*victim_view.values(), *others_view.values()])
    # The victim is shown the others' signatures, but they signed another set.
    refusal = _refusal(coordinator.unmask(round_id, VICTIM, NODES, {**victim_view, **others_view}))
    assert "only 1 of the 5 members of the cohort signed it" in refusal
    # The others reveal the victim's mask-key shares (it dropped, in their view), never its seed shares.
    for node in others:
        assert coordinator.unmask(round_id, node, others, others_view).has_content()
    revealed_seed = revealed_key = False
    for reply in coordinator.grid.received:
        if reply.has_content() and messages.REVEAL_RECORD in reply.content:
            record = reply.content[messages.REVEAL_RECORD]
            revealed_seed |= VICTIM in ids_from_bytes(bytes(record["seed-from"]))
            revealed_key |= VICTIM in ids_from_bytes(bytes(record["key-from"]))
    assert revealed_key and not revealed_seed


def test_split_view_a_cohort_below_a_nodes_min_cohort_is_never_signed(tmp_path: Path) -> None:
    round_id = b"W" * 16
    coordinator, _ = masked_round(tmp_path, round_id, [VICTIM])  # default policy: secure.min_cohort 3
    reply = coordinator.sign_cohort(round_id, [VICTIM, NODES[1]], ask=[VICTIM])[VICTIM]
    assert _refusal(reply).endswith("refused: policy min-cohort")


def test_re_setup_a_new_run_key_mid_round_abandons_the_round_and_opens_no_box(tmp_path: Path) -> None:
    """Review finding: a fresh run key made holders unable to open the victim's boxes, so they accused
    it, and the victim revealed its box keys: both its secrets, with no colluding node."""
    round_id = b"N" * 16
    coordinator, shares = masked_round(tmp_path, round_id, [VICTIM])
    holders = NODES[1:]
    again = SecAggRunKeys(coordinator.kit)  # another run key, properly signed by the coordinator
    assert again.ensure_setup(coordinator.exchange, holders) == set(holders)
    for node in holders:
        assert "no secrets for that round" in _refusal(coordinator.masked(round_id, node, shares))
    # Under the new key, the old round id is still answered once, the victim's too.
    assert again.ensure_setup(coordinator.exchange, NODES) == set(NODES)
    coordinator.run_keys = again
    replies = coordinator.share_keys(round_id, NODES)
    assert all("answered once" in _refusal(reply) for reply in replies.values())
    assert not any(
        reply.has_content() and messages.DISPUTE_REPLY in reply.content for reply in coordinator.grid.received
    )


def low_point_app(liar: int):  # type: ignore[no-untyped-def]
    """Node `liar` signs an all-zero mask key: every exchange with it fails."""

    def zero_key(request: Message, context: Context, content: RecordDict) -> None:
        record = content[messages.SHARES_RECORD]
        round_id = bytes(request.content[messages.ROUND_RECORD]["round-id"])
        record["s-pk"] = s_pk = bytes(32)
        record["s-sig"] = node_kit(context.node_config).identity.sign(*session.round_keys_signed(
            round_id, liar, s_pk, int(record["threshold"]), bytes(record["b-commit"])
        ))
        _retag_shares(context, round_id, record)

    return lying_app(liar, messages.SHARES_RECORD, zero_key)


def test_low_order_key_a_node_signing_an_unusable_mask_key_is_dropped_and_the_others_go_on(tmp_path: Path) -> None:
    """Review finding: its neighbours crashed computing the pairwise mask, and were blamed."""
    liar = NODES[1]
    coordinator = Coordinator(tmp_path, app=low_point_app(liar))
    result = session_of(coordinator)
    assert result.failure is None, result.failure
    assert result.used == [node for node in NODES if node != liar]
    assert _exact(result, result.used)
    # A server passing the key on anyway gets a refusal, not a crash.
    coordinator.run_keys.ensure_setup(coordinator.exchange, NODES)  # the session forgot the dropped liar
    round_id = b"Z" * 16
    shares = _shares(coordinator.share_keys(round_id, NODES))
    assert "no exchange can use" in _refusal(coordinator.masked(round_id, VICTIM, shares))


def test_malformed_requests_are_refused_never_a_crash(tmp_path: Path) -> None:
    coordinator = Coordinator(tmp_path)
    record = coordinator.round_record(b"M" * 16, NODES)
    record["participants"] = b"\x01\x02\x03"  # not a multiple of 8 bytes
    reply = coordinator.ask(VICTIM, messages.SECAGG_SHARE_KEYS, {messages.ROUND_RECORD: record})
    assert "ProtocolViolation: a malformed request" in _refusal(reply)
    reply = coordinator.ask(VICTIM, messages.SECAGG_CONSISTENCY, {messages.COHORT_RECORD: ConfigRecord({})})
    assert "ProtocolViolation" in _refusal(reply)
