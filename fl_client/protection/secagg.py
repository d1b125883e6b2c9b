"""The node's side of SecAgg+ (see `fl_protocol.protection.secagg.session` for the stages).

Secrets never leave the node except as the protocol allows: private keys and the
self-mask seed stay in the node's `Context.state`; shares leave only sealed to a
neighbour; at unmasking a node reveals, per peer, either its share of the self-mask
seed or of the mask key, never both, and only for its own neighbours.

The node assumes a coordinator and peers that may not follow the protocol (Bell et
al. 2020, malicious model) and relies only on its kit (`fl_client.kit`):

- the coordinator's run key must be signed by the coordinator key of the roster the
  unit pinned; every peer's encryption key `c` and mask key `s` must be signed by that
  peer's roster key, for this run and this round: no key a server made is ever used;
- it answers each round id once, so shares sealed for one round never open in another;
- its policy's minimums stand whatever the coordinator asks: at least `min_peers`
  neighbours and a threshold of at least `min_threshold` (never below 2), so a server
  cannot lift a node's masks by giving it no peers or by naming it alone as used. It
  reveals nothing for a cohort below `min_cohort`, but that cohort is the one the server
  states: until nodes check each other's view of it (the consistency round), a lying
  server is held only by the threshold and `min_peers`.
"""

import secrets

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fedtriage.errors import Refused
from fl_client.kit import NodeKit
from fl_protocol import records
from fl_protocol.identity.keys import verify
from fl_protocol.protection import messages
from fl_protocol.protection.secagg import keys, session, shamir
from fl_protocol.protection.secagg.masks import mask_vector
from fl_protocol.protection.secagg.neighbourhood import neighbours
from fl_protocol.protection.secagg.sealed_shares import TamperedBox, open_box, seal
from fl_protocol.protection.secagg.wire import id_bytes, ids_from_bytes, ids_to_bytes
from fl_protocol.settings import SecAggSettings
from fl_protocol.settings.policy import NodePolicy

_RUN_STATE = "secagg-run"
_ROUND_STATE = "secagg-round"


class ProtocolViolation(Refused):
    """The server asked for something the protocol does not allow; the node refuses."""


def setup(msg: Message, context: Context, kit: NodeKit, node_info: ConfigRecord) -> Message:
    """Stage 0: check the coordinator's signed run key; keep (or make) this run's encryption key pair."""
    request = msg.content[messages.SETUP_RECORD]
    run_key_id, server_pk = bytes(request["run-key-id"]), bytes(request["server-pk"])
    if not verify(kit.roster.server_key, bytes(request["server-sig"]), session.SERVER_RUN_KEY, run_key_id, server_pk):
        raise ProtocolViolation("the run key is not signed by the coordinator key of this node's roster")
    run = context.state.get(_RUN_STATE)
    if run is None or bytes(run["run-key-id"]) != run_key_id or bytes(run["server-pk"]) != server_pk:
        private = keys.new_private_key()
        run = ConfigRecord(
            {
                "run-key-id": run_key_id,
                "server-pk": server_pk,
                "c-sk": keys.private_bytes(private),
                "c-pk": keys.public_bytes(private),
                "answered": [b""],  # round ids this node drew secrets for, under this key
            }
        )
        context.state[_RUN_STATE] = run
    c_pk = bytes(run["c-pk"])
    me = id_bytes(context.node_id)
    confirm = keys.tag(_auth_key(run), b"confirm", me, c_pk, server_pk)
    signature = kit.identity.sign(session.NODE_RUN_KEY, run_key_id, server_pk, me, kit.name.encode(), c_pk)
    keys_record = ConfigRecord({"c-pk": c_pk, "confirm": confirm, "name": kit.name, "sig": signature})
    return Message(RecordDict({messages.KEYS_RECORD: keys_record, records.NODE_INFO_KEY: node_info}), reply_to=msg)


def share_keys(
    msg: Message, context: Context, settings: SecAggSettings, kit: NodeKit, node_info: ConfigRecord
) -> Message:
    """Stage 1: check the round, draw this round's secrets and seal shares of them for the neighbours."""
    run = _run_state(context)
    request = msg.content[messages.ROUND_RECORD]
    round_id = bytes(request["round-id"])
    participants = ids_from_bytes(bytes(request["participants"]))
    me = context.node_id
    roster_keys = _verified_participants(run, kit, me, participants, request)
    c_pks = dict(zip(participants, (bytes(pk) for pk in request["c-pks"])))
    answered = [bytes(item) for item in run["answered"]]
    if round_id in answered:
        raise ProtocolViolation("this node already drew secrets for that round id: a round id is answered once")
    degree = int(request["degree"]) or None
    holders = sorted(neighbours(participants, degree, round_id)[me] + [me])
    needed = node_threshold(len(holders), settings.threshold, kit.policy)
    run["answered"] = [*answered, round_id]  # before any secret exists: a failure below burns the id too
    points = session.share_points(participants)

    mask_key, self_seed = keys.new_private_key(), secrets.token_bytes(32)
    seed_shares = shamir.split(self_seed, needed, [points[h] for h in holders])
    key_shares = shamir.split(keys.private_bytes(mask_key), needed, [points[h] for h in holders])
    c_sk = keys.load_private(bytes(run["c-sk"]))
    box_to: list[int] = []
    boxes: list[bytes] = []
    own: tuple[bytes, bytes] = (b"", b"")
    for holder, seed_share, key_share in zip(holders, seed_shares, key_shares):
        if holder == me:
            own = (seed_share.y_bytes(), key_share.y_bytes())
            continue
        box_key = keys.derive_key(c_sk, c_pks[holder], session.SHARE_BOX_PURPOSE, round_id)
        box_to.append(holder)
        boxes.append(seal(box_key, seed_share.y_bytes() + key_share.y_bytes(), round_id, me, holder))

    s_pk = keys.public_bytes(mask_key)
    commitment = session.seed_commitment(round_id, self_seed)
    context.state[_ROUND_STATE] = ConfigRecord(
        {
            "round-id": round_id,
            "participants": ids_to_bytes(participants),
            "c-pks": [c_pks[node] for node in participants],
            "roster-keys": [roster_keys[node] for node in participants],
            "holders": ids_to_bytes(holders),
            "threshold": needed,
            "s-sk": keys.private_bytes(mask_key),
            "b-seed": self_seed,
            "own-b": own[0],
            "own-s": own[1],
        }
    )
    box_to_bytes = ids_to_bytes(box_to)
    auth = keys.tag(_auth_key(run), b"share-keys", round_id, s_pk, box_to_bytes, *boxes)
    signature = kit.identity.sign(*session.round_keys_signed(round_id, me, s_pk, needed, commitment))
    shares = ConfigRecord(
        {
            "s-pk": s_pk,
            "box-to": box_to_bytes,
            "boxes": boxes or [b""],
            "tag": auth,
            "threshold": needed,
            "b-commit": commitment,
            "s-sig": signature,
        }
    )
    return Message(RecordDict({messages.SHARES_RECORD: shares, records.NODE_INFO_KEY: node_info}), reply_to=msg)


def node_threshold(holders: int, fraction: float, policy: NodePolicy) -> int:
    """The node's threshold: the protocol's, raised to its policy's; too few neighbours are refused."""
    if holders - 1 < policy.secure.min_peers:
        raise ProtocolViolation(
            f"the round gives this node {holders - 1} neighbours; its policy's secure.min_peers is "
            f"{policy.secure.min_peers}"
        )
    # The policy's check keeps min_threshold <= min_peers + 1, so this never exceeds `holders`.
    return max(session.threshold(holders, fraction), policy.secure.min_threshold)


def masked(
    msg: Message,
    context: Context,
    contribution: np.ndarray,
    node_info: ConfigRecord,
    attachments: list[bytes] | None = None,
) -> Message:
    """Stage 2: open the neighbours' boxes, then send the masked contribution.

    `attachments` (CKKS ciphertexts) travel with the masked vector under the same tag.
    """
    run, state, peers, s_pks = _masking_request(msg, context)
    request = msg.content[messages.PEERS_RECORD]
    round_id = bytes(state["round-id"])
    me = context.node_id
    holders = set(ids_from_bytes(bytes(state["holders"])))
    c_sk = keys.load_private(bytes(run["c-sk"]))
    participants = ids_from_bytes(bytes(state["participants"]))
    c_pks = dict(zip(participants, (bytes(pk) for pk in state["c-pks"])))
    received_from: list[int] = []
    received: list[bytes] = []
    bad: list[int] = []
    for sender, box in zip(ids_from_bytes(bytes(request["box-from"])), request["boxes"]):
        if sender not in holders or sender not in c_pks:
            raise ProtocolViolation(f"a share box from node {sender}, who is no neighbour")
        box_key = keys.derive_key(c_sk, c_pks[sender], session.SHARE_BOX_PURPOSE, round_id)
        try:
            plaintext = open_box(box_key, bytes(box), round_id, sender, me)
        except TamperedBox:
            bad.append(sender)
            continue
        received_from.append(sender)
        received.append(plaintext)
    state["received-from"] = ids_to_bytes(received_from)
    state["received"] = received or [b""]

    vector = np.array(contribution, dtype=np.uint32, copy=True)
    vector += mask_vector(bytes(state["b-seed"]), vector.size)
    mask_key = keys.load_private(bytes(state["s-sk"]))
    for peer, s_pk in zip(peers, s_pks):
        pairwise = mask_vector(keys.derive_key(mask_key, s_pk, session.MASK_PURPOSE, round_id), vector.size)
        if session.pairwise_sign(me, peer) > 0:
            vector += pairwise
        else:
            vector -= pairwise
    state["masked-sent"] = True  # its seeds mask this one vector only (see `masks`)
    bad_bytes = ids_to_bytes(bad)
    attachments = attachments or []
    auth = keys.tag(
        _auth_key(run), b"masked", round_id, keys.digest(vector.tobytes()), bad_bytes,
        len(attachments).to_bytes(8, "big"), *attachments,
    )
    record = ConfigRecord(
        {
            "bad-senders": bad_bytes,
            "attachments": attachments or [b""],
            "attachment-count": len(attachments),
            "tag": auth,
        }
    )
    content = RecordDict(
        {
            messages.MASKED_ARRAYS: ArrayRecord({"y": Array(vector)}),
            messages.MASKED_RECORD: record,
            records.NODE_INFO_KEY: node_info,
        }
    )
    return Message(content, reply_to=msg)


def unmask(msg: Message, context: Context, kit: NodeKit, node_info: ConfigRecord) -> Message:
    """Stage 3: reveal self-mask shares of used nodes and key shares of dropped ones."""
    run, state = _run_state(context), _round_state(context, msg.content[messages.UNMASK_RECORD])
    request = msg.content[messages.UNMASK_RECORD]
    round_id = bytes(state["round-id"])
    me = context.node_id
    used = set(ids_from_bytes(bytes(request["used"])))
    dropped = set(ids_from_bytes(bytes(request["dropped"])))
    cohort = set(ids_from_bytes(bytes(request["cohort"])))
    if used & dropped:
        raise ProtocolViolation("the server asked for both secrets of the same node")
    holders = set(ids_from_bytes(bytes(state["holders"])))
    if not (used | dropped) <= holders:
        raise ProtocolViolation("the server asked about nodes that are not this node's neighbours")
    if len(used & holders) < int(state["threshold"]):
        # Else a server naming one node used and its neighbours dropped could rebuild all its masks.
        raise ProtocolViolation(
            f"only {len(used & holders)} of this node's share holders (itself included) were used; "
            f"revealing needs at least the threshold of {int(state['threshold'])}"
        )
    if not used <= cohort or cohort & dropped or not cohort <= set(ids_from_bytes(bytes(state["participants"]))):
        raise ProtocolViolation("the server's cohort does not match the nodes it calls used and dropped")
    if len(cohort) < kit.policy.secure.min_cohort:
        raise ProtocolViolation(
            f"the sum would cover {len(cohort)} nodes; this node's policy's secure.min_cohort is "
            f"{kit.policy.secure.min_cohort}"
        )
    shares = {me: (bytes(state["own-b"]), bytes(state["own-s"]))}
    for sender, plaintext in zip(ids_from_bytes(bytes(state.get("received-from", b""))), state.get("received", [])):
        shares[sender] = (bytes(plaintext[: shamir.SHARE_BYTES]), bytes(plaintext[shamir.SHARE_BYTES :]))
    seed_from = sorted(node for node in used if node in shares)
    key_from = sorted(node for node in dropped if node in shares)
    seed_ys = [shares[node][0] for node in seed_from]
    key_ys = [shares[node][1] for node in key_from]
    del context.state[_ROUND_STATE]  # one unmasking per round: nothing more to reveal
    auth = keys.tag(
        _auth_key(run), b"unmask", round_id, ids_to_bytes(seed_from), *seed_ys, ids_to_bytes(key_from), *key_ys,
    )
    reveal = ConfigRecord(
        {
            "seed-from": ids_to_bytes(seed_from),
            "seed-shares": seed_ys or [b""],
            "key-from": ids_to_bytes(key_from),
            "key-shares": key_ys or [b""],
            "tag": auth,
        }
    )
    return Message(RecordDict({messages.REVEAL_RECORD: reveal, records.NODE_INFO_KEY: node_info}), reply_to=msg)


def check_masking_request(msg: Message, context: Context) -> None:
    """Refuse a stage-2 request the protocol does not allow, before the node does any work for it."""
    _masking_request(msg, context)


def _verified_participants(
    run: ConfigRecord, kit: NodeKit, me: int, participants: list[int], request: ConfigRecord
) -> dict[int, bytes]:
    """Node id -> roster key of every participant whose `c` key that roster key signed for this run.

    Any key not signed so, a name twice, or a wrong entry for this node itself: the round is refused.
    """
    c_pks = [bytes(pk) for pk in request["c-pks"]]
    names = [str(name) for name in request["names"]]
    signatures = [bytes(sig) for sig in request["c-sigs"]]
    if not len(participants) == len(c_pks) == len(names) == len(signatures) or len(set(participants)) != len(
        participants
    ):
        raise ProtocolViolation("the round's participants, keys, names and signatures do not line up")
    if len(set(names)) != len(names):
        raise ProtocolViolation("the round names one roster member for more than one node")
    run_key_id, server_pk = bytes(run["run-key-id"]), bytes(run["server-pk"])
    roster_keys: dict[int, bytes] = {}
    for node, c_pk, name, signature in zip(participants, c_pks, names, signatures):
        roster_key = kit.roster.node_key(name)
        if roster_key is None:
            raise ProtocolViolation(f"participant {name!r} is not in this node's roster")
        signed = (run_key_id, server_pk, id_bytes(node), name.encode(), c_pk)
        if not verify(roster_key, signature, session.NODE_RUN_KEY, *signed):
            raise ProtocolViolation(f"the key of participant {name!r} is not signed by its roster key")
        roster_keys[node] = roster_key
    if me not in participants:
        raise ProtocolViolation(f"node {me} is not among this round's participants")
    mine = participants.index(me)
    if names[mine] != kit.name or c_pks[mine] != bytes(run["c-pk"]):
        raise ProtocolViolation("the round lists this node under another name or key")
    return roster_keys


def _masking_request(msg: Message, context: Context) -> tuple[ConfigRecord, ConfigRecord, list[int], list[bytes]]:
    """This run's and round's state, the peers and their mask keys, once the request is checked."""
    run, state = _run_state(context), _round_state(context, msg.content[messages.PEERS_RECORD])
    if state.get("masked-sent", False):
        raise ProtocolViolation("this node already sent its masked vector for this round")
    request = msg.content[messages.PEERS_RECORD]
    holders = set(ids_from_bytes(bytes(state["holders"])))
    peers = ids_from_bytes(bytes(request["peers"]))
    s_pks = [bytes(pk) for pk in request["s-pks"]][: len(peers)]
    _check_peers(peers, s_pks, holders - {context.node_id}, int(state["threshold"]))
    _check_mask_keys(state, bytes(state["round-id"]), peers, s_pks, request)
    return run, state, peers, s_pks


def _check_peers(peers: list[int], s_pks: list[bytes], neighbours_of_me: set[int], threshold: int) -> None:
    """Refuse to mask with fewer peers than the threshold, so no lone self-mask can be lifted.

    As in Bell et al. 2020: the surviving neighbours plus this node must be at least the
    threshold of share holders, each with a mask key, or the server could later rebuild
    this node's self-mask and see its input.
    """
    if len(set(peers)) != len(peers) or not set(peers) <= neighbours_of_me:
        raise ProtocolViolation("the server named peers that are not this node's distinct neighbours")
    if len(s_pks) != len(peers):
        raise ProtocolViolation("the server sent fewer mask keys than peers")
    if len(peers) + 1 < threshold:
        raise ProtocolViolation(
            f"only {len(peers)} neighbours survived; masking needs {threshold - 1} (the threshold, less this node)"
        )


def _check_mask_keys(
    state: ConfigRecord, round_id: bytes, peers: list[int], s_pks: list[bytes], request: ConfigRecord
) -> None:
    """Every peer's mask key must be signed by that peer's roster key for this round."""
    signatures = [bytes(sig) for sig in request["s-sigs"]][: len(peers)]
    thresholds = [int(value) for value in request["peer-thresholds"]][: len(peers)]
    commitments = [bytes(value) for value in request["peer-commits"]][: len(peers)]
    if not len(signatures) == len(thresholds) == len(commitments) == len(peers):
        raise ProtocolViolation("the server sent fewer mask-key signatures than peers")
    participants = ids_from_bytes(bytes(state["participants"]))
    roster_keys = dict(zip(participants, (bytes(key) for key in state["roster-keys"])))
    for peer, s_pk, signature, needed, commitment in zip(peers, s_pks, signatures, thresholds, commitments):
        signed = session.round_keys_signed(round_id, peer, s_pk, needed, commitment)
        if not verify(roster_keys[peer], signature, *signed):
            raise ProtocolViolation(f"the mask key of node {peer} is not signed by its roster key for this round")


def auth_key(context: Context) -> bytes:
    """The key this node authenticates its replies to the server with (after setup)."""
    return _auth_key(_run_state(context))


def _run_state(context: Context) -> ConfigRecord:
    run = context.state.get(_RUN_STATE)
    if run is None:
        raise ProtocolViolation("no secure-aggregation keys for this run yet (setup missing)")
    return run  # type: ignore[return-value]


def _round_state(context: Context, request: ConfigRecord) -> ConfigRecord:
    state = context.state.get(_ROUND_STATE)
    if state is None or bytes(state["round-id"]) != bytes(request["round-id"]):
        raise ProtocolViolation("this node holds no secrets for that round")
    return state  # type: ignore[return-value]


def _auth_key(run: ConfigRecord) -> bytes:
    c_sk = keys.load_private(bytes(run["c-sk"]))
    return keys.derive_key(c_sk, bytes(run["server-pk"]), session.AUTH_PURPOSE, bytes(run["run-key-id"]))
