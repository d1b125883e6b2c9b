"""The server's side of one SecAgg+ session (stages 1-3 of `fl_protocol.protection.secagg.session`).

The server only ever holds masked vectors, sealed boxes it cannot open, and the
shares the protocol lets it collect; it sums the masked vectors first and removes
masks from the sum, so no step computes a single node's unmasked vector. A node
whose reply fails authentication or whose round keys or boxes are not signed by its
roster key is treated as dropped. An accusation of a bad box is settled by the box's
key, which the accused reveals: the one who lied is dropped, so one node can neither
empty a round by accusing its neighbours nor stay in it with boxes nobody can open.
Each node's secrets are rebuilt with the threshold it signed, and checked against what
it signed (its seed commitment, its mask public key): wrong shares are outvoted by
trying other subsets, never believed. If fewer nodes remain than the round allows, a
secret cannot be rebuilt, or the sums lie outside what honest nodes can send, the
session fails loudly and yields no sum.
"""

import itertools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from flwr.app import ConfigRecord, Message, RecordDict

from fl_protocol.identity.keys import verify
from fl_protocol.protection import messages
from fl_protocol.protection.secagg import keys, session, shamir
from fl_protocol.protection.secagg.contribution import ContributionLayout
from fl_protocol.protection.secagg.masks import mask_vector
from fl_protocol.protection.secagg.neighbourhood import neighbours
from fl_protocol.protection.secagg.sealed_shares import TamperedBox, open_revealed
from fl_protocol.protection.secagg.wire import ids_from_bytes, ids_to_bytes
from fl_protocol.settings import SecAggSettings
from fl_server.node_exchange import NodeExchange
from fl_server.protection.secagg_keys import SecAggRunKeys


@dataclass
class SessionResult:
    """The decoded sums over the used nodes, or why there are none."""

    sums: dict[str, np.ndarray] | None
    used: list[int] = field(default_factory=list)
    failure: str | None = None
    # A stage-2 instruction of the session, for building the strategy's reply.
    instruction: Message | None = None
    counts: dict[str, float] = field(default_factory=dict)
    # Authenticated attachments of the used nodes' contributions (CKKS ciphertexts), and
    # their senders' signatures over them (`session.attachments_signed`).
    attachments: dict[int, list[bytes]] = field(default_factory=dict)
    attachment_signatures: dict[int, bytes] = field(default_factory=dict)
    round_id: bytes = b""
    # Nodes whose misbehaviour failed the session (a cohort member that did not sign it, a node
    # whose own shares do not rebuild its secret): the aggregation leaves them out of later rounds.
    suspects: list[int] = field(default_factory=list)
    # Stage 1 of the next session, done with this one's unmasking, when every participant answered it.
    ahead: "KeysAhead | None" = None


# Subsets of shares tried before a secret is given up as not rebuildable (C(12, 6) = 924).
_MAX_SUBSETS = 5000


@dataclass
class _SharedKeys:
    """A node's signed round keys and the boxes it sealed for its neighbours."""

    s_pk: bytes
    boxes: dict[int, bytes]
    box_signatures: dict[int, bytes]
    threshold: int
    commitment: bytes
    signature: bytes
    # Its signature over all participants as the cohort (the fast path), or None.
    cohort_signature: bytes | None = None


@dataclass
class KeysAhead:
    """Stage 1 of a session, done during the previous session's unmasking (`session`: keys ahead).

    Usable only by a session with exactly these participants, every one of which shared.
    """

    round_id: bytes
    participants: list[int]
    graph: dict[int, list[int]]
    shared: dict[int, _SharedKeys]

    def fits(self, participants: list[int]) -> bool:
        return self.participants == participants and sorted(self.shared) == participants


def run_session(
    exchange: NodeExchange,
    run_keys: SecAggRunKeys,
    settings: SecAggSettings,
    layout: ContributionLayout,
    base_content: RecordDict,
    message_type: str,
    participants: Sequence[int],
    min_nodes: int,
    ahead: KeysAhead | None = None,
    share_ahead: bool = False,
) -> SessionResult:
    """Run stages 1-4 with `participants` (all registered); decode the sum of the used nodes.

    `ahead`: stage 1 as the previous session did it, used if it fits these participants.
    `share_ahead`: if every participant is in the cohort, the unmask stage also runs the
    next session's stage 1 with the same participants (`SessionResult.ahead`).
    """
    participants = sorted(participants)
    counts: dict[str, float] = {"participants": float(len(participants))}
    if len(participants) > layout.max_contributors:
        return SessionResult(None, failure=_too_many(len(participants), layout.max_contributors), counts=counts)
    if len(participants) < min_nodes:
        return SessionResult(None, failure=_too_few(len(participants), min_nodes, "took part"), counts=counts)

    # Stage 1: fresh mask keys, their shares sealed for the neighbours (small messages); done
    # already if the previous session shared this one's keys ahead.
    if ahead is not None and ahead.fits(participants):
        round_id, graph, shared = ahead.round_id, ahead.graph, ahead.shared
        counts["keys-shared-ahead"] = 1.0
    else:
        round_id = secrets.token_bytes(16)
        graph = neighbours(participants, settings.neighbours, round_id)
        round_record = _round_record(run_keys, settings, round_id, participants)
        requests = [
            Message(
                RecordDict({messages.ROUND_RECORD: round_record}), dst_node_id=node,
                message_type=messages.SECAGG_SHARE_KEYS,
            )
            for node in participants
        ]
        shared = {
            reply.metadata.src_node_id: keys_and_boxes
            for reply in exchange.send_and_receive(requests, "secagg-share-keys")
            if (keys_and_boxes := _verified_shares(reply, run_keys, round_id, graph, settings, participants))
            is not None
        }
    counts["dropped-at-share-keys"] = float(len(participants) - len(shared))
    for node in participants:
        if node not in shared:
            # A node that lost its keys (restarted) is set up again when next sampled.
            run_keys.forget(node)
    if len(shared) < min_nodes:
        return SessionResult(None, failure=_too_few(len(shared), min_nodes, "shared their keys"), counts=counts)
    holders = {node: sorted(graph[node] + [node]) for node in participants}

    # Stage 2: the model goes out; trained (or evaluated), masked vectors come back.
    instructions = []
    for node in shared:
        peers = [peer for peer in graph[node] if peer in shared]
        senders = [peer for peer in peers if node in shared[peer].boxes]
        peers_record = ConfigRecord(
            {
                "round-id": round_id,
                "peers": ids_to_bytes(peers),
                "s-pks": [shared[peer].s_pk for peer in peers] or [b""],
                "s-sigs": [shared[peer].signature for peer in peers] or [b""],
                "peer-thresholds": [shared[peer].threshold for peer in peers] or [0],
                "peer-commits": [shared[peer].commitment for peer in peers] or [b""],
                "box-from": ids_to_bytes(senders),
                "boxes": [shared[sender].boxes[node] for sender in senders] or [b""],
                "box-sigs": [shared[sender].box_signatures[node] for sender in senders] or [b""],
            }
        )
        content = RecordDict({**dict(base_content.items()), messages.PEERS_RECORD: peers_record})
        instructions.append(Message(content, dst_node_id=node, message_type=message_type))
    vectors: dict[int, np.ndarray] = {}
    attachments: dict[int, list[bytes]] = {}
    attachment_signatures: dict[int, bytes] = {}
    accusations: dict[int, dict[int, bytes]] = {}  # accused -> accuser -> signed accusation
    for reply in exchange.send_and_receive(instructions, "secagg-masked"):
        node = reply.metadata.src_node_id
        verified = _verified_masked(reply, run_keys, round_id, layout.length)
        if verified is None:
            continue
        vectors[node], accused_by_node, attachments[node], attachment_signatures[node] = verified
        for accused, signature in accused_by_node.items():
            if accused in shared and node in shared[accused].boxes and verify(
                run_keys.roster_key(node), signature, *session.accusation_signed(round_id, node, accused)
            ):
                accusations.setdefault(accused, {})[node] = signature
    counts["dropped-at-masked"] = float(len(shared) - len(vectors))
    for node in shared:
        if node not in vectors:
            run_keys.forget(node)  # it may have restarted since it shared its keys: set up again when next sampled
    liars = _settle_accusations(exchange, run_keys, round_id, shared, accusations) if accusations else set()
    counts["dropped-at-dispute"] = float(len(liars))
    used = sorted(node for node in vectors if node not in liars)
    dropped = sorted(node for node in shared if node not in used)
    if len(used) < min_nodes:
        return SessionResult(None, failure=_too_few(len(used), min_nodes, "sent a usable masked vector"),
                             counts=counts)

    # Stage 3: every node of the cohort signs it (unless all participants are in it and signed that
    # at stage 1: the fast path); stage 4 shows each the others' signatures.
    cohort = ids_to_bytes(used)
    fast = {node: shared[node].cohort_signature for node in used}
    if used == participants and all(fast.values()):
        signatures = {node: signature for node, signature in fast.items() if signature}
    else:
        signatures = _signed_cohort(exchange, run_keys, round_id, cohort, used)
        counts["dropped-at-consistency"] = float(len(used) - len(signatures))
    signers = sorted(signatures)
    if signers != used:
        # Nodes reveal only for a cohort every member signed: the sum could not be unmasked.
        return SessionResult(None, used=used, counts=counts, suspects=sorted(set(used) - set(signers)), failure=(
            f"only {len(signers)} of the {len(used)} nodes whose vectors are summed signed the cohort; nodes "
            "reveal only for a cohort every member signed"
        ))
    unmask_record = ConfigRecord(
        {
            "round-id": round_id,
            "cohort": cohort,
            "signers": ids_to_bytes(signers),
            "signatures": [signatures[node] for node in signers] or [b""],
        }
    )
    unmask_content = {messages.UNMASK_RECORD: unmask_record}
    # Keys ahead: the next session's stage 1 rides on this stage, for the same participants.
    share_ahead = share_ahead and used == participants
    next_id = secrets.token_bytes(16) if share_ahead else b""
    next_graph = neighbours(participants, settings.neighbours, next_id) if share_ahead else {}
    if share_ahead:
        unmask_content[messages.ROUND_RECORD] = _round_record(run_keys, settings, next_id, participants)
    next_shared: dict[int, _SharedKeys] = {}
    requests = [
        Message(RecordDict(dict(unmask_content)), dst_node_id=node, message_type=messages.SECAGG_UNMASK)
        for node in signers
    ]
    used_set = set(used)
    points = session.share_points(participants)
    seed_shares: dict[int, list[shamir.Share]] = {node: [] for node in used}
    key_shares: dict[int, list[shamir.Share]] = {node: [] for node in dropped}
    revealed = 0
    for reply in exchange.send_and_receive(requests, "secagg-unmask"):
        verified = _verified_reveal(reply, run_keys, round_id)
        if verified is None:
            continue
        revealed += 1
        responder = reply.metadata.src_node_id
        if share_ahead and (
            next_keys := _verified_shares(reply, run_keys, next_id, next_graph, settings, participants)
        ) is not None:
            next_shared[responder] = next_keys
        seeds, mask_keys = verified
        for owner, y in seeds.items():
            if owner in seed_shares and responder in holders[owner]:
                seed_shares[owner].append(shamir.Share(points[responder], y))
        for owner, y in mask_keys.items():
            if owner in key_shares and responder in holders[owner]:
                key_shares[owner].append(shamir.Share(points[responder], y))
    counts["dropped-at-unmask"] = float(len(signers) - revealed)
    keys_ahead = KeysAhead(next_id, participants, next_graph, next_shared) if next_shared else None

    total = np.zeros(layout.length, dtype=np.uint32)
    for node in used:
        total += vectors[node]
    try:
        for node in used:
            commitment = shared[node].commitment
            self_seed = _secret(
                seed_shares[node], shared[node].threshold, "unmask a node",
                lambda seed: session.seed_commitment(round_id, seed) == commitment, owner=node,
            )
            total -= mask_vector(self_seed, layout.length)
        for node in dropped:
            masked_with = [peer for peer in graph[node] if peer in used_set]
            if not masked_with:
                continue
            s_pk = shared[node].s_pk
            mask_key = keys.load_private(
                _secret(
                    key_shares[node], shared[node].threshold, "remove a dropped node's masks",
                    lambda key: keys.public_bytes(keys.load_private(key)) == s_pk, owner=node,
                )
            )
            for peer in masked_with:
                seed = keys.derive_key(mask_key, shared[peer].s_pk, session.MASK_PURPOSE, round_id)
                pairwise = mask_vector(seed, layout.length)
                if session.pairwise_sign(peer, node) > 0:
                    total -= pairwise
                else:
                    total += pairwise
    except _TooFewShares as err:
        return SessionResult(None, used=used, counts=counts, failure=str(err), suspects=err.suspects,
                             ahead=keys_ahead)
    counts["used"] = float(len(used))
    if impossible := layout.impossible_sums(total, len(used)):
        return SessionResult(None, used=used, counts=counts, ahead=keys_ahead, failure=(
            f"the sums of {', '.join(impossible)} lie outside what {len(used)} honest nodes can send: a node sent "
            "values out of range; the round's sums are discarded"
        ))
    return SessionResult(
        layout.decode_sum(total, len(used)),
        used=used,
        instruction=instructions[0],
        counts=counts,
        attachments={node: attachments[node] for node in used},
        attachment_signatures={node: attachment_signatures[node] for node in used},
        round_id=round_id,
        ahead=keys_ahead,
    )


def _round_record(
    run_keys: SecAggRunKeys, settings: SecAggSettings, round_id: bytes, participants: list[int]
) -> ConfigRecord:
    """Stage 1's request: the round id and every participant's signed run encryption key."""
    return ConfigRecord(
        {
            "round-id": round_id,
            "participants": ids_to_bytes(participants),
            "c-pks": [run_keys.c_pk(node) for node in participants],
            "names": [run_keys.node(node).name for node in participants],
            "c-sigs": [run_keys.node(node).signature for node in participants],
            "degree": settings.neighbours or 0,
        }
    )


class _TooFewShares(Exception):
    """Not enough shares came back to rebuild a secret: the session yields no sum."""

    def __init__(self, message: str, suspects: list[int] | None = None) -> None:
        super().__init__(message)
        self.suspects = suspects or []


def _secret(
    shares: list[shamir.Share], needed: int, purpose: str, matches: Callable[[bytes], bool], owner: int
) -> bytes:
    """The secret `needed` of the `shares` rebuild and that `matches` what its owner signed.

    Subsets are tried until one matches, so shares a dishonest holder altered are outvoted
    as long as `needed` honest ones came back; else `_TooFewShares`, never a wrong secret.
    With at least 2 * needed - 1 shares and none rebuilding it, fewer than `needed` holders
    could have lied only if the owner dealt shares of no one secret: the owner is the suspect
    (more liars would be `needed` colluding holders, who could rebuild the secret anyway).
    """
    if len(shares) < needed:
        raise _TooFewShares(
            f"only {len(shares)} of the {needed} shares needed to {purpose} came back (the node's threshold: "
            "secure.secagg.threshold, raised by its policy's secure.min_threshold)"
        )
    for subset in itertools.islice(itertools.combinations(shares, needed), _MAX_SUBSETS):
        try:
            secret = shamir.reconstruct(subset, needed)
            if matches(secret):
                return secret
        except ValueError:  # not a secret of the right size, or not a valid key
            continue
    raise _TooFewShares(
        f"no {needed} of the {len(shares)} shares that came back rebuild the secret to {purpose}",
        suspects=[owner] if len(shares) >= 2 * needed - 1 else [],
    )


def _verified_shares(
    reply: Message,
    run_keys: SecAggRunKeys,
    round_id: bytes,
    graph: dict[int, list[int]],
    settings: SecAggSettings,
    participants: list[int],
) -> _SharedKeys | None:
    node = reply.metadata.src_node_id
    record = reply.content.get(messages.SHARES_RECORD)
    if record is None or node not in graph:
        return None
    s_pk, box_to = bytes(record["s-pk"]), bytes(record["box-to"])
    receivers = ids_from_bytes(box_to)
    boxes = [bytes(box) for box in record["boxes"]][: len(receivers)]
    box_signatures = [bytes(sig) for sig in record["box-sigs"]][: len(receivers)]
    if not keys.verify_tag(run_keys.auth_key(node), bytes(record["tag"]), b"share-keys", round_id, s_pk, box_to,
                           *boxes):
        return None
    if sorted(receivers) != graph[node]:
        return None
    if not keys.usable_public(s_pk):
        return None  # its neighbours could not mask with it
    needed, commitment, signature = int(record["threshold"]), bytes(record["b-commit"]), bytes(record["s-sig"])
    if not session.threshold(len(graph[node]) + 1, settings.threshold) <= needed <= len(graph[node]) + 1:
        return None
    roster_key = run_keys.roster_key(node)
    if not verify(roster_key, signature, *session.round_keys_signed(round_id, node, s_pk, needed, commitment)):
        return None
    if len(box_signatures) != len(receivers) or not all(
        verify(roster_key, box_signature, *session.box_signed(round_id, node, receiver, box))
        for receiver, box, box_signature in zip(receivers, boxes, box_signatures)
    ):
        return None
    cohort_signature = bytes(record.get("cohort-sig", b"")) or None
    if cohort_signature is not None and not verify(
        roster_key, cohort_signature, *session.cohort_signed(round_id, ids_to_bytes(participants))
    ):
        cohort_signature = None
    return _SharedKeys(
        s_pk, dict(zip(receivers, boxes)), dict(zip(receivers, box_signatures)), needed, commitment, signature,
        cohort_signature,
    )


def _verified_masked(
    reply: Message, run_keys: SecAggRunKeys, round_id: bytes, length: int
) -> tuple[np.ndarray, dict[int, bytes], list[bytes], bytes] | None:
    """The masked vector, the node's accusations (accused -> signature), its attachments and their signature."""
    record = reply.content.get(messages.MASKED_RECORD)
    arrays = reply.content.get(messages.MASKED_ARRAYS)
    if record is None or arrays is None:
        return None
    node = reply.metadata.src_node_id
    vector = arrays["y"].numpy()
    bad = bytes(record["bad-senders"])
    accused = ids_from_bytes(bad)
    accusations = [bytes(sig) for sig in record["accusations"]][: len(accused)]
    count = int(record["attachment-count"])
    attachments = [bytes(item) for item in record["attachments"]][:count]
    signature = bytes(record["attachments-sig"])
    if vector.dtype != np.uint32 or vector.shape != (length,) or len(accusations) != len(accused):
        return None
    if not keys.verify_tag(run_keys.auth_key(node), bytes(record["tag"]), b"masked", round_id,
                           keys.digest(vector), bad, *accusations, count.to_bytes(8, "big"), *attachments):
        return None
    if attachments and not verify(run_keys.roster_key(node), signature,
                                  *session.attachments_signed(round_id, node, attachments)):
        return None
    return vector, dict(zip(accused, accusations)), attachments, signature


def _settle_accusations(
    exchange: NodeExchange,
    run_keys: SecAggRunKeys,
    round_id: bytes,
    shared: dict[int, "_SharedKeys"],
    accusations: dict[int, dict[int, bytes]],
) -> set[int]:
    """The nodes that lied: each accused node reveals its accused boxes' keys, and the box decides.

    A box that opens under the key its signed ephemeral public key commits to shows the
    accuser lied; one that does not, or no answer, shows the accused sealed a bad box.
    """
    requests = []
    for accused, by_accuser in accusations.items():
        accusers = sorted(by_accuser)
        record = ConfigRecord(
            {
                "round-id": round_id,
                "accusers": ids_to_bytes(accusers),
                "accusations": [by_accuser[accuser] for accuser in accusers],
            }
        )
        requests.append(Message(RecordDict({messages.DISPUTE_RECORD: record}), dst_node_id=accused,
                                message_type=messages.SECAGG_DISPUTE))
    revealed: dict[int, dict[int, bytes]] = {}
    for reply in exchange.send_and_receive(requests, "secagg-dispute"):
        record = reply.content.get(messages.DISPUTE_REPLY) if reply.has_content() else None
        node = reply.metadata.src_node_id
        if record is None:
            continue
        to = ids_from_bytes(bytes(record["to"]))
        box_secrets = [bytes(secret) for secret in record["box-secrets"]][: len(to)]
        if keys.verify_tag(run_keys.auth_key(node), bytes(record["tag"]), b"dispute", round_id, bytes(record["to"]),
                           *box_secrets):
            revealed[node] = dict(zip(to, box_secrets))
    liars: set[int] = set()
    for accused, by_accuser in accusations.items():
        for accuser in by_accuser:
            secret = revealed.get(accused, {}).get(accuser)
            try:
                if secret is None:
                    raise TamperedBox("no key revealed")
                open_revealed(secret, run_keys.c_pk(accuser), shared[accused].boxes[accuser], round_id, accused,
                              accuser)
            except TamperedBox:
                liars.add(accused)
                continue
            liars.add(accuser)
    return liars


def _signed_cohort(
    exchange: NodeExchange, run_keys: SecAggRunKeys, round_id: bytes, cohort: bytes, used: list[int]
) -> dict[int, bytes]:
    """The consistency stage: each node of the cohort is asked to sign it; the valid signatures."""
    requests = [
        Message(RecordDict({messages.COHORT_RECORD: ConfigRecord({"round-id": round_id, "cohort": cohort})}),
                dst_node_id=node, message_type=messages.SECAGG_CONSISTENCY)
        for node in used
    ]
    return {
        reply.metadata.src_node_id: signature
        for reply in exchange.send_and_receive(requests, "secagg-consistency")
        if (signature := _verified_cohort_signature(reply, run_keys, round_id, cohort)) is not None
    }


def _verified_cohort_signature(reply: Message, run_keys: SecAggRunKeys, round_id: bytes, cohort: bytes) -> bytes | None:
    record = reply.content.get(messages.COHORT_SIGNATURE) if reply.has_content() else None
    if record is None:
        return None
    node, signature = reply.metadata.src_node_id, bytes(record["signature"])
    if not keys.verify_tag(run_keys.auth_key(node), bytes(record["tag"]), b"cohort", round_id, cohort, signature):
        return None
    if not verify(run_keys.roster_key(node), signature, *session.cohort_signed(round_id, cohort)):
        return None
    return signature


def _verified_reveal(
    reply: Message, run_keys: SecAggRunKeys, round_id: bytes
) -> tuple[dict[int, int], dict[int, int]] | None:
    record = reply.content.get(messages.REVEAL_RECORD)
    if record is None:
        return None
    seed_from, key_from = bytes(record["seed-from"]), bytes(record["key-from"])
    seed_ys = [bytes(y) for y in record["seed-shares"]][: len(ids_from_bytes(seed_from))]
    key_ys = [bytes(y) for y in record["key-shares"]][: len(ids_from_bytes(key_from))]
    if not keys.verify_tag(run_keys.auth_key(reply.metadata.src_node_id), bytes(record["tag"]), b"unmask", round_id,
                           seed_from, *seed_ys, key_from, *key_ys):
        return None
    seeds = {owner: int.from_bytes(y, "big") for owner, y in zip(ids_from_bytes(seed_from), seed_ys)}
    mask_keys = {owner: int.from_bytes(y, "big") for owner, y in zip(ids_from_bytes(key_from), key_ys)}
    return seeds, mask_keys


def _too_many(count: int, most: int) -> str:
    return (
        f"{count} nodes took part, but the contribution vector is sized for at most {most} "
        f"(federation.num_nodes={most}); more could overflow its sums"
    )


def _too_few(count: int, needed: int, what: str) -> str:
    return f"only {count} nodes {what}; secure aggregation needs at least {needed} (federation.min_train_nodes)"
