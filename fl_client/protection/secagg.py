"""The node's side of SecAgg+ (see `fl_protocol.protection.secagg.session` for the stages).

Secrets never leave the node except as the protocol allows: private keys and the
self-mask seed stay in the node's `Context.state`; shares leave only sealed to a
neighbour; at unmasking a node reveals, per neighbour, either its share of the self-mask
seed or of the mask key, never both, and only for its own neighbours.

The node assumes a coordinator and peers that may not follow the protocol (Bell et
al. 2020 and Bonawitz et al. 2017, malicious model) and relies only on its kit
(`fl_client.kit`):

- the coordinator's run key must be signed by the coordinator key of the roster the
  unit pinned; every peer's encryption key `c`, mask key `s` and share box must be signed
  by that peer's roster key, for this run and this round: no key a server made is used;
- it answers each round id once, whatever run key the coordinator presents later, and a
  new run key abandons the round in progress: shares sealed for one round never open in
  another, and nothing sealed to an old key is disputed or revealed under a new one;
- its policy's minimums stand whatever the coordinator asks: at least `min_peers`
  neighbours and a threshold of at least `min_threshold` (never below 2), so a server
  cannot lift a node's masks by giving it no peers;
- it reveals once per round, for one cohort (the set of nodes summed) that every member of
  it, at least its policy's `min_cohort` distinct roster members, signed: all participants,
  signed at stage 1 (the fast path, when nobody drops), or the one cohort it signs at the
  consistency stage. A server that tells nodes different stories, or names a cohort too
  small, gets nothing; two cohorts of a round never yield two sums, because each node
  reveals once and a secret needs a majority of its holders. A node holding a CKKS key
  skips the fast path and so signs one cohort a round: two decrypted sums of one round
  would differ by one node's update;
- it reveals a box's key only to answer an accusation its receiver signed, so a false
  accuser is caught and a node that sealed a bad box is dropped.
"""

import functools
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fedtriage.errors import FedtriageError, Refused
from fl_client.kit import NodeKit
from fl_client.policy_gate import PolicyRefused
from fl_protocol import records
from fl_protocol.identity.keys import verify
from fl_protocol.protection import ckks_contexts, messages
from fl_protocol.protection.modes import Weighting
from fl_protocol.protection.secagg import keys, session, shamir
from fl_protocol.protection.secagg.masks import mask_vector
from fl_protocol.protection.secagg.neighbourhood import neighbours
from fl_protocol.protection.secagg.sealed_shares import TamperedBox, open_box, seal
from fl_protocol.protection.secagg.wire import id_bytes, ids_from_bytes, ids_to_bytes
from fl_protocol.settings import SecAggSettings
from fl_protocol.settings.policy import NodePolicy

logger = logging.getLogger("fedtriage.client")

_RUN_STATE = "secagg-run"
_ROUND_STATE = "secagg-round"
# Every round id this node drew secrets for, under any run key: each is answered once.
_ANSWERED_STATE = "secagg-answered"
# The last round this node unmasked: its id, participants, their roster keys and the cohort it signed.
FINISHED_STATE = "secagg-finished"


class ProtocolViolation(Refused):
    """The server asked for something the protocol does not allow; the node refuses.

    Its message speaks only of what the server sent, so the coordinator may read it.
    """

    @property
    def public_reason(self) -> str:
        return f"refused: protocol: {self}"


@dataclass(frozen=True)
class MaskingRequest:
    """A stage-2 request once checked: this run's and round's state, the peers and their mask keys."""

    msg: Message
    run: ConfigRecord
    state: ConfigRecord
    peers: list[int]
    s_pks: list[bytes]


_Stage = TypeVar("_Stage", bound=Callable[..., Any])


def refuses_malformed(stage: _Stage) -> _Stage:
    """A request whose records are missing, mistyped or malformed is refused, never a crash."""

    @functools.wraps(stage)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return stage(*args, **kwargs)
        except FedtriageError:
            raise
        except (KeyError, ValueError, TypeError, IndexError) as err:
            raise ProtocolViolation(f"a malformed request: {type(err).__name__}: {err}") from err

    return checked  # type: ignore[return-value]


@refuses_malformed
def setup(msg: Message, context: Context, kit: NodeKit, node_info: ConfigRecord) -> Message:
    """Stage 0: check the coordinator's signed run key; keep (or make) this run's encryption key pair."""
    request = msg.content[messages.SETUP_RECORD]
    run_key_id, server_pk = bytes(request["run-key-id"]), bytes(request["server-pk"])
    if not verify(kit.roster.server_key, bytes(request["server-sig"]), session.SERVER_RUN_KEY, run_key_id, server_pk):
        raise ProtocolViolation("the run key is not signed by the coordinator key of this node's roster")
    run = context.state.get(_RUN_STATE)
    if run is None or bytes(run["run-key-id"]) != run_key_id or bytes(run["server-pk"]) != server_pk:
        # A new run key: any round in progress is abandoned with its secrets, so that nothing
        # sealed to the old encryption key can be disputed or revealed under the new one.
        for stale in (_ROUND_STATE, FINISHED_STATE):
            if stale in context.state:
                del context.state[stale]
        private = keys.new_private_key()
        run = ConfigRecord(
            {
                "run-key-id": run_key_id,
                "server-pk": server_pk,
                "c-sk": keys.private_bytes(private),
                "c-pk": keys.public_bytes(private),
            }
        )
        context.state[_RUN_STATE] = run
    c_pk = bytes(run["c-pk"])
    me = id_bytes(context.node_id)
    confirm = keys.tag(_auth_key(run), b"confirm", me, c_pk, server_pk)
    signature = kit.identity.sign(session.NODE_RUN_KEY, run_key_id, server_pk, me, kit.name.encode(), c_pk)
    keys_record = ConfigRecord({"c-pk": c_pk, "confirm": confirm, "name": kit.name, "sig": signature})
    return Message(RecordDict({messages.KEYS_RECORD: keys_record, records.NODE_INFO_KEY: node_info}), reply_to=msg)


@refuses_malformed
def share_keys(
    msg: Message, context: Context, settings: SecAggSettings, kit: NodeKit, node_info: ConfigRecord
) -> Message:
    """Stage 1: check the round, draw this round's secrets and seal shares of them for the neighbours."""
    shares = _draw_round(msg.content[messages.ROUND_RECORD], context, settings, kit)
    return Message(RecordDict({messages.SHARES_RECORD: shares, records.NODE_INFO_KEY: node_info}), reply_to=msg)


@refuses_malformed
def _draw_round(request: ConfigRecord, context: Context, settings: SecAggSettings, kit: NodeKit) -> ConfigRecord:
    """Stage 1's checks and secrets for the round `request` names; the shares record to send."""
    if settings.weighting is Weighting.examples and not kit.policy.secure.release_counts:
        raise PolicyRefused(
            "release-counts", "the run's secure.secagg.weighting=examples would send this node's example counts "
            "inside the sum, and its policy's secure.release_counts is false"
        )
    run = _run_state(context)
    round_id = bytes(request["round-id"])
    participants = ids_from_bytes(bytes(request["participants"]))
    me = context.node_id
    roster_keys = _verified_participants(run, kit, me, participants, request)
    c_pks = dict(zip(participants, (bytes(pk) for pk in request["c-pks"])))
    answered_record = context.state.get(_ANSWERED_STATE) or ConfigRecord({"round-ids": [b""]})
    answered = [bytes(item) for item in answered_record["round-ids"]]  # type: ignore[union-attr]
    if round_id in answered:
        raise ProtocolViolation("this node already drew secrets for that round id: a round id is answered once")
    degree = int(request["degree"]) or None
    holders = sorted(neighbours(participants, degree, round_id)[me] + [me])
    needed = node_threshold(len(holders), settings.threshold, kit.policy)
    _require_cohort_size(len(participants), kit)  # no cohort of this round can be larger
    # Before any secret exists (a failure below burns the id too), and kept whatever run key comes next.
    context.state[_ANSWERED_STATE] = ConfigRecord({"round-ids": [*answered, round_id]})
    points = session.share_points(participants)

    mask_key, self_seed = keys.new_private_key(), secrets.token_bytes(32)
    seed_shares = shamir.split(self_seed, needed, [points[h] for h in holders])
    key_shares = shamir.split(keys.private_bytes(mask_key), needed, [points[h] for h in holders])
    box_to: list[int] = []
    boxes: list[bytes] = []
    box_secrets: list[bytes] = []
    own: tuple[bytes, bytes] = (b"", b"")
    for holder, seed_share, key_share in zip(holders, seed_shares, key_shares):
        if holder == me:
            own = (seed_share.y_bytes(), key_share.y_bytes())
            continue
        box, box_secret = seal(c_pks[holder], seed_share.y_bytes() + key_share.y_bytes(), round_id, me, holder)
        box_to.append(holder)
        boxes.append(box)
        box_secrets.append(box_secret)
    box_signatures = [kit.identity.sign(*session.box_signed(round_id, me, to, box)) for to, box in zip(box_to, boxes)]

    s_pk = keys.public_bytes(mask_key)
    commitment = session.seed_commitment(round_id, self_seed)
    # The fast path: this node signs now that the sum may be over all participants, so that a round
    # nobody drops out of needs no consistency stage. A node holding a CKKS key never does: it signs
    # one cohort per round, so that no two cohorts of a round are complete (see `unmask`).
    fast = not has_ckks_key(kit)
    participants_bytes = ids_to_bytes(participants)
    context.state[_ROUND_STATE] = ConfigRecord(
        {
            "round-id": round_id,
            "participants": participants_bytes,
            "roster-keys": [roster_keys[node] for node in participants],
            "holders": ids_to_bytes(holders),
            "threshold": needed,
            "s-sk": keys.private_bytes(mask_key),
            "b-seed": self_seed,
            "own-b": own[0],
            "own-s": own[1],
            "box-to": ids_to_bytes(box_to),
            "box-secrets": box_secrets or [b""],
            "signed-participants": fast,
        }
    )
    cohort_signature = kit.identity.sign(*session.cohort_signed(round_id, participants_bytes)) if fast else b""
    box_to_bytes = ids_to_bytes(box_to)
    auth = keys.tag(_auth_key(run), b"share-keys", round_id, s_pk, box_to_bytes, *boxes)
    signature = kit.identity.sign(*session.round_keys_signed(round_id, me, s_pk, needed, commitment))
    return ConfigRecord(
        {
            "s-pk": s_pk,
            "box-to": box_to_bytes,
            "boxes": boxes or [b""],
            "box-sigs": box_signatures or [b""],
            "tag": auth,
            "threshold": needed,
            "b-commit": commitment,
            "s-sig": signature,
            "cohort-sig": cohort_signature,
        }
    )


def node_threshold(holders: int, fraction: float, policy: NodePolicy) -> int:
    """The node's threshold: the protocol's, raised to its policy's; too few neighbours are refused."""
    if holders - 1 < policy.secure.min_peers:
        raise PolicyRefused("min-peers", f"the round gives this node {holders - 1} neighbours; its policy's "
                                         f"secure.min_peers is {policy.secure.min_peers}")
    # The policy's check keeps min_threshold <= min_peers + 1, so this never exceeds `holders`.
    return max(session.threshold(holders, fraction), policy.secure.min_threshold)


@refuses_malformed
def masked(
    msg: Message,
    context: Context,
    kit: NodeKit,
    contribution: np.ndarray,
    node_info: ConfigRecord,
    attachments: list[bytes] | None = None,
    checked: MaskingRequest | None = None,
) -> Message:
    """Stage 2: open the neighbours' signed boxes, then send the masked contribution.

    `attachments` (CKKS ciphertexts) travel with the masked vector under the same tag.
    `checked`: what `check_masking_request` found for this very message, so its signatures
    are not checked twice.
    """
    if checked is None or checked.msg is not msg:
        checked = _masking_request(msg, context)
    run, state, peers, s_pks = checked.run, checked.state, checked.peers, checked.s_pks
    request = msg.content[messages.PEERS_RECORD]
    round_id = bytes(state["round-id"])
    me = context.node_id
    holders = set(ids_from_bytes(bytes(state["holders"])))
    roster_keys = _roster_keys(state)
    senders = ids_from_bytes(bytes(request["box-from"]))
    boxes = [bytes(box) for box in request["boxes"]][: len(senders)]
    box_signatures = [bytes(sig) for sig in request["box-sigs"]][: len(senders)]
    if len(boxes) != len(senders) or len(box_signatures) != len(senders) or len(set(senders)) != len(senders):
        raise ProtocolViolation("the server's share boxes, senders and signatures do not line up")
    received_from: list[int] = []
    received: list[bytes] = []
    bad: list[int] = []
    for sender, box, signature in zip(senders, boxes, box_signatures):
        if sender not in holders or sender == me:
            raise ProtocolViolation(f"a share box from node {sender}, who is no neighbour")
        if not verify(roster_keys[sender], signature, *session.box_signed(round_id, sender, me, box)):
            # Its sender signs every box: an unsigned one was made or altered on the way.
            raise ProtocolViolation(f"the share box from node {sender} is not the one its sender signed")
        try:
            plaintext = open_box(bytes(run["c-sk"]), box, round_id, sender, me)
        except TamperedBox:
            bad.append(sender)  # signed by its sender yet unreadable: the sender is accused
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
    accusations = [kit.identity.sign(*session.accusation_signed(round_id, me, sender)) for sender in bad]
    attachments = attachments or []
    # Signed, so that the node that decrypts (CKKS) can check whose ciphertexts it adds.
    attachments_signature = kit.identity.sign(*session.attachments_signed(round_id, me, attachments))
    auth = keys.tag(
        _auth_key(run), b"masked", round_id, keys.digest(vector), bad_bytes, *accusations,
        len(attachments).to_bytes(8, "big"), *attachments,
    )
    record = ConfigRecord(
        {
            "bad-senders": bad_bytes,
            "accusations": accusations or [b""],
            "attachments": attachments or [b""],
            "attachment-count": len(attachments),
            "attachments-sig": attachments_signature,
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


@refuses_malformed
def dispute(msg: Message, context: Context, node_info: ConfigRecord) -> Message:
    """Answer accusations: reveal the key of each box whose receiver signed that it does not open.

    A box's key opens that one box: what its receiver already holds, if the receiver is
    honest; so a signed accusation is the only reason this node reveals one.
    """
    run, request = _run_state(context), msg.content[messages.DISPUTE_RECORD]
    state = _round_state(context, request)
    round_id = bytes(state["round-id"])
    me = context.node_id
    accusers = ids_from_bytes(bytes(request["accusers"]))
    signatures = [bytes(sig) for sig in request["accusations"]][: len(accusers)]
    box_to = ids_from_bytes(bytes(state["box-to"]))
    secrets_by_receiver = dict(zip(box_to, (bytes(secret) for secret in state["box-secrets"])))
    roster_keys = _roster_keys(state)
    if len(signatures) != len(accusers) or len(set(accusers)) != len(accusers):
        raise ProtocolViolation("the server's accusers and accusations do not line up")
    revealed: list[bytes] = []
    for accuser, signature in zip(accusers, signatures):
        if accuser not in secrets_by_receiver:
            raise ProtocolViolation(f"node {accuser} received no box from this node")
        if not verify(roster_keys[accuser], signature, *session.accusation_signed(round_id, accuser, me)):
            raise ProtocolViolation(f"node {accuser} did not sign an accusation against this node")
        revealed.append(secrets_by_receiver[accuser])
    auth = keys.tag(_auth_key(run), b"dispute", round_id, ids_to_bytes(accusers), *revealed)
    reply = ConfigRecord({"to": ids_to_bytes(accusers), "box-secrets": revealed or [b""], "tag": auth})
    return Message(RecordDict({messages.DISPUTE_REPLY: reply, records.NODE_INFO_KEY: node_info}), reply_to=msg)


@refuses_malformed
def sign_cohort(msg: Message, context: Context, kit: NodeKit, node_info: ConfigRecord) -> Message:
    """Stage 3: sign the cohort the server names, once per round (besides the fast path's at stage 1)."""
    run, request = _run_state(context), msg.content[messages.COHORT_RECORD]
    state = _round_state(context, request)
    round_id = bytes(state["round-id"])
    cohort_bytes = bytes(request["cohort"])
    cohort = ids_from_bytes(cohort_bytes)
    if not state.get("masked-sent", False):
        raise ProtocolViolation("this node sent no masked vector for this round: it is in no cohort")
    if "cohort" in state and bytes(state["cohort"]) != cohort_bytes:
        raise ProtocolViolation("this node already signed another cohort for this round")
    if ids_to_bytes(sorted(set(cohort))) != cohort_bytes or context.node_id not in cohort:
        raise ProtocolViolation("the server's cohort is not a sorted set of nodes that includes this node")
    if not set(cohort) <= set(ids_from_bytes(bytes(state["participants"]))):
        raise ProtocolViolation("the server's cohort names nodes that did not take part in this round")
    _require_cohort_size(len(cohort), kit)
    state["cohort"] = cohort_bytes
    signature = kit.identity.sign(*session.cohort_signed(round_id, cohort_bytes))
    auth = keys.tag(_auth_key(run), b"cohort", round_id, cohort_bytes, signature)
    reply = ConfigRecord({"signature": signature, "tag": auth})
    return Message(RecordDict({messages.COHORT_SIGNATURE: reply, records.NODE_INFO_KEY: node_info}), reply_to=msg)


@refuses_malformed
def unmask(
    msg: Message, context: Context, settings: SecAggSettings, kit: NodeKit, node_info: ConfigRecord
) -> Message:
    """Stage 4: for the cohort this node and every other member signed, reveal self-mask shares of
    its members and mask-key shares of the neighbours outside it.

    The request may carry the next round's stage 1 (keys ahead): answered beside the reveal,
    with every check stage 1 makes, once this round's secrets are spent. A refusal of it
    leaves the reveal alone: the server then runs that stage on its own.
    """
    run, request = _run_state(context), msg.content[messages.UNMASK_RECORD]
    state = _round_state(context, request)
    round_id = bytes(state["round-id"])
    me = context.node_id
    cohort_bytes = bytes(request["cohort"])
    if not state.get("masked-sent", False):
        raise ProtocolViolation("this node sent no masked vector for this round: it reveals nothing for it")
    fast_cohort = bytes(state["participants"]) if state.get("signed-participants", False) else b""
    if cohort_bytes not in (state.get("cohort", b""), fast_cohort) or not cohort_bytes:
        raise ProtocolViolation("this node did not sign that cohort for this round")
    cohort = set(ids_from_bytes(cohort_bytes))
    signers = _cohort_signers(state, request, cohort_bytes)
    if len(cohort) < kit.policy.secure.min_cohort:
        raise PolicyRefused("min-cohort", f"the cohort has {len(cohort)} members; this node's policy's "
                                          f"secure.min_cohort is {kit.policy.secure.min_cohort}")
    if signers != cohort:
        # Every member checked its own minimum when it signed; all must have.
        raise ProtocolViolation(
            f"only {len(signers)} of the {len(cohort)} members of the cohort signed it; this node reveals once all have"
        )
    holders = set(ids_from_bytes(bytes(state["holders"])))
    used, dropped = holders & cohort, holders - cohort
    if len(used) < int(state["threshold"]):
        # Else a server naming one node used and its neighbours dropped could rebuild all its masks.
        raise ProtocolViolation(
            f"only {len(used)} of this node's share holders (itself included) are in the cohort; "
            f"revealing needs at least the threshold of {int(state['threshold'])}"
        )
    shares = {me: (bytes(state["own-b"]), bytes(state["own-s"]))}
    for sender, plaintext in zip(ids_from_bytes(bytes(state.get("received-from", b""))), state.get("received", [])):
        shares[sender] = (bytes(plaintext[: shamir.SHARE_BYTES]), bytes(plaintext[shamir.SHARE_BYTES :]))
    seed_from = sorted(node for node in used if node in shares)
    key_from = sorted(node for node in dropped if node in shares)
    seed_ys = [shares[node][0] for node in seed_from]
    key_ys = [shares[node][1] for node in key_from]
    # One unmasking per round: nothing more to reveal. What is kept says which sum this node
    # may still decrypt (CKKS), once.
    context.state[FINISHED_STATE] = ConfigRecord(
        {**{key: state[key] for key in ("round-id", "participants", "roster-keys")}, "cohort": cohort_bytes}
    )
    del context.state[_ROUND_STATE]
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
    content = RecordDict({messages.REVEAL_RECORD: reveal, records.NODE_INFO_KEY: node_info})
    if messages.ROUND_RECORD in msg.content:
        try:
            content[messages.SHARES_RECORD] = _draw_round(msg.content[messages.ROUND_RECORD], context, settings, kit)
        except Refused as err:
            logger.warning("refused to share keys for the next round ahead: %s", err)
    return Message(content, reply_to=msg)


def _cohort_signers(state: ConfigRecord, request: ConfigRecord, cohort_bytes: bytes) -> set[int]:
    """The distinct cohort members whose roster keys signed this very cohort for this round."""
    cohort = set(ids_from_bytes(cohort_bytes))
    signers = ids_from_bytes(bytes(request["signers"]))
    signatures = [bytes(sig) for sig in request["signatures"]][: len(signers)]
    signed = session.cohort_signed(bytes(state["round-id"]), cohort_bytes)
    roster_keys = _roster_keys(state)
    return {
        signer
        for signer, signature in zip(signers, signatures)
        if signer in cohort and verify(roster_keys[signer], signature, *signed)
    }


def has_ckks_key(kit: NodeKit) -> bool:
    """Whether this node can decrypt CKKS sums: then it signs one cohort per round, never two."""
    return (kit.path / ckks_contexts.SECRET_FILE).is_file()


def _require_cohort_size(size: int, kit: NodeKit) -> None:
    if size < kit.policy.secure.min_cohort:
        raise PolicyRefused("min-cohort", f"the sum would cover {size} nodes; this node's policy's "
                                          f"secure.min_cohort is {kit.policy.secure.min_cohort}")


@refuses_malformed
def check_masking_request(msg: Message, context: Context) -> MaskingRequest:
    """Refuse a stage-2 request the protocol does not allow, before the node does any work for it."""
    return _masking_request(msg, context)


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
    # Run keys are the same every round of a run: each (node, name, key, signature, roster key) is checked once.
    verified = {bytes(item) for item in run.get("verified-c", [])}  # type: ignore[union-attr]
    roster_keys: dict[int, bytes] = {}
    for node, c_pk, name, signature in zip(participants, c_pks, names, signatures):
        roster_key = kit.roster.node_key(name)
        if roster_key is None:
            raise ProtocolViolation(f"participant {name!r} is not in this node's roster")
        signed = (run_key_id, server_pk, id_bytes(node), name.encode(), c_pk)
        checked = keys.digest(b"".join(len(part).to_bytes(8, "big") + part
                                       for part in (*signed, signature, roster_key)))
        if checked not in verified:
            if not verify(roster_key, signature, session.NODE_RUN_KEY, *signed):
                raise ProtocolViolation(f"the key of participant {name!r} is not signed by its roster key")
            if not keys.usable_public(c_pk):
                raise ProtocolViolation(f"participant {name!r} signed an encryption key no exchange can use")
            verified.add(checked)
        roster_keys[node] = roster_key
    if verified:
        run["verified-c"] = sorted(verified)
    if me not in participants:
        raise ProtocolViolation(f"node {me} is not among this round's participants")
    mine = participants.index(me)
    if names[mine] != kit.name or c_pks[mine] != bytes(run["c-pk"]):
        raise ProtocolViolation("the round lists this node under another name or key")
    return roster_keys


def _masking_request(msg: Message, context: Context) -> MaskingRequest:
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
    return MaskingRequest(msg, run, state, peers, s_pks)


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
    roster_keys = _roster_keys(state)
    for peer, s_pk, signature, needed, commitment in zip(peers, s_pks, signatures, thresholds, commitments):
        signed = session.round_keys_signed(round_id, peer, s_pk, needed, commitment)
        if not verify(roster_keys[peer], signature, *signed):
            raise ProtocolViolation(f"the mask key of node {peer} is not signed by its roster key for this round")
        if not keys.usable_public(s_pk):
            raise ProtocolViolation(f"node {peer} signed a mask key no exchange can use")


def roster_keys(state: ConfigRecord) -> dict[int, bytes]:
    """Participant -> roster key, from a round's (or a finished round's) state."""
    return _roster_keys(state)


def _roster_keys(state: ConfigRecord) -> dict[int, bytes]:
    """Participant -> the roster key its round keys were checked against at stage 1."""
    participants = ids_from_bytes(bytes(state["participants"]))
    return dict(zip(participants, (bytes(key) for key in state["roster-keys"])))


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
