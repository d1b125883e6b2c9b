"""A server that deviates at random, against real nodes: it never learns more than a big enough sum.

Hypothesis plays a coordinator that keeps the stages' shapes but chooses, at every step,
whom to ask, which participants, keys, boxes, cohorts and signatures to send (subsets,
other orders, repeats, swaps, another node's cohort), forged accusations, and who drops.
Whatever it does, what the nodes reveal must satisfy, for every node v with threshold t:

1. never both t shares of v's self-mask seed and t shares of its mask key (that is v's
   input, unmasked);
2. t shares of v's seed only for a cohort of at least its policy's `min_cohort` that v and
   every other member signed (at the consistency stage, or at stage 1 for all participants:
   the fast path): v's input is exposed only inside a sum over at least its minimum of
   roster members.
"""

import pytest
from flwr.app import ConfigRecord, Message
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fl_protocol.protection import messages
from fl_protocol.protection.secagg import session
from fl_protocol.protection.secagg.wire import ids_from_bytes, ids_to_bytes
from tests.protection.test_attacks import NODES, SETTINGS, Coordinator, _shares
from tests.support.inprocess_grid import InProcessGrid
from tests.support.kits import shared_node_kits
from tests.support.known_contributions import known_contributions_app

pytestmark = pytest.mark.attack

MIN_COHORT = 3  # the nodes' default policy


def _coordinator() -> Coordinator:
    kit, configs = shared_node_kits(NODES, policy=None)  # default policy: min_peers 3, min_cohort 3
    return Coordinator.on(InProcessGrid(known_contributions_app(SETTINGS, len(NODES)), configs, {}), kit, NODES, 0.2)


def _deviates(data: st.DataObject, label: str) -> bool:
    """One step in six deviates (the simplest draw is the honest one), so that many runs get as far as
    revealing something while every step is attacked somewhere."""
    return data.draw(st.integers(0, 5), label=f"deviate: {label}") == 5


def _subset(data: st.DataObject, items: list[int], label: str, min_size: int = 0) -> list[int]:
    """All of `items` (the honest choice), or a random subset in a random order."""
    if not items or not _deviates(data, label):
        return list(items)
    return data.draw(st.lists(st.sampled_from(items), min_size=min_size, max_size=len(items), unique=True),
                     label=label)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_a_randomly_deviating_server_never_learns_more_than_a_sum_over_the_nodes_minimum(data) -> None:  # type: ignore[no-untyped-def]
    coordinator = _coordinator()
    rounds = data.draw(st.integers(1, 2), label="rounds")
    used_ids: list[bytes] = []
    for number in range(rounds):
        replay = used_ids and _deviates(data, "replay a round id")
        round_id = data.draw(st.sampled_from(used_ids), label="replayed id") if replay else bytes([number + 1]) * 16
        used_ids.append(round_id)
        _deviating_round(coordinator, data, round_id)
    _check_what_was_revealed(coordinator)


def _deviating_round(coordinator: Coordinator, data: st.DataObject, round_id: bytes) -> None:
    participants = sorted(_subset(data, NODES, "participants", min_size=1))
    record = coordinator.round_record(round_id, participants)
    if len(participants) > 1 and _deviates(data, "swap c keys"):
        c_pks = [bytes(pk) for pk in record["c-pks"]]
        c_pks[0], c_pks[1] = c_pks[1], c_pks[0]
        record["c-pks"] = c_pks
    asked = _subset(data, participants, "asked at stage 1")
    replies = {node: coordinator.ask(node, messages.SECAGG_SHARE_KEYS, {messages.ROUND_RECORD: record})
               for node in asked}
    shares = _shares(replies)
    if not shares:
        return
    for node in _subset(data, sorted(shares), "asked at stage 2"):
        shown = {peer: shares[peer] for peer in _subset(data, sorted(shares), f"peers shown to {node}")}
        shown[node] = shares[node]
        replace: dict[str, object] = {}
        peers = sorted(peer for peer in shown if peer != node)
        if len(peers) > 1 and _deviates(data, "swap mask keys"):
            s_pks = [bytes(shown[peer]["s-pk"]) for peer in peers]
            replace["s-pks"] = s_pks[1:] + s_pks[:1]
        try:
            coordinator.masked(round_id, node, shown, **replace)
        except (KeyError, ValueError):  # a box the shown peers never sealed for it: nothing to send
            pass
    masked_by = sorted(
        reply.metadata.src_node_id for reply in coordinator.grid.received
        if reply.has_content() and messages.MASKED_RECORD in reply.content
    )
    for accused in (_subset(data, masked_by, "accused") if _deviates(data, "accuse") else []):  # forged
        forged = coordinator.kit.identity.sign(*session.accusation_signed(round_id, NODES[0], accused))
        dispute = ConfigRecord({"round-id": round_id, "accusers": ids_to_bytes([NODES[0]]), "accusations": [forged]})
        coordinator.ask(accused, messages.SECAGG_DISPUTE, {messages.DISPUTE_RECORD: dispute})
    signatures: dict[int, Message] = {}
    cohorts: dict[int, list[int]] = {}
    for node in _subset(data, NODES, "asked to sign"):
        cohort = sorted(_subset(data, masked_by, f"cohort told to {node}", min_size=1)) or [node]
        cohorts[node] = cohort
        signatures.update(coordinator.sign_cohort(round_id, cohort, ask=[node]))
    # The fast path's signatures: each node's over all participants, given at stage 1.
    fast = {node: bytes(record["cohort-sig"]) for node, record in shares.items() if bytes(record["cohort-sig"])}
    for node in _subset(data, NODES, "asked to unmask"):
        if fast and data.draw(st.booleans(), label=f"fast cohort to {node}"):
            shown_fast = {signer: fast[signer] for signer in _subset(data, sorted(fast), f"fast signatures to {node}")}
            coordinator.unmask(round_id, node, participants, signed=shown_fast)
            continue
        cohort = cohorts.get(node) or sorted(_subset(data, masked_by, f"cohort at unmask for {node}", min_size=1))
        shown = {signer: signatures[signer] for signer in _subset(data, sorted(signatures), f"signatures to {node}")}
        coordinator.unmask(round_id, node, cohort, shown)


def _check_what_was_revealed(coordinator: Coordinator) -> None:
    thresholds: dict[tuple[bytes, int], int] = {}
    signed_cohorts: dict[tuple[bytes, int], bytes] = {}
    fast_cohorts: dict[tuple[bytes, int], bytes] = {}
    cohort_signers: dict[tuple[bytes, bytes], set[int]] = {}
    # (round, owner, cohort the revealer signed) -> revealers; (round, owner) -> revealers
    seed_holders: dict[tuple[bytes, int, bytes], set[int]] = {}
    key_holders: dict[tuple[bytes, int], set[int]] = {}
    requests = {message.metadata.message_id: message for message in coordinator.grid.delivered}
    for reply in coordinator.grid.received:
        if not reply.has_content():
            continue
        request = requests[reply.metadata.reply_to_message_id]
        node = reply.metadata.src_node_id
        if messages.SHARES_RECORD in reply.content:
            round_record = request.content[messages.ROUND_RECORD]
            round_id = bytes(round_record["round-id"])
            thresholds[(round_id, node)] = int(reply.content[messages.SHARES_RECORD]["threshold"])
            if bytes(reply.content[messages.SHARES_RECORD]["cohort-sig"]):  # the fast path: all participants
                cohort = bytes(round_record["participants"])
                fast_cohorts[(round_id, node)] = cohort
                cohort_signers.setdefault((round_id, cohort), set()).add(node)
        if messages.COHORT_SIGNATURE in reply.content:
            record = request.content[messages.COHORT_RECORD]
            round_id, cohort = bytes(record["round-id"]), bytes(record["cohort"])
            signed_cohorts[(round_id, node)] = cohort
            cohort_signers.setdefault((round_id, cohort), set()).add(node)
        if messages.REVEAL_RECORD in reply.content:
            record = request.content[messages.UNMASK_RECORD]
            round_id, cohort = bytes(record["round-id"]), bytes(record["cohort"])
            reveal = reply.content[messages.REVEAL_RECORD]
            for owner in ids_from_bytes(bytes(reveal["seed-from"])):
                seed_holders.setdefault((round_id, owner, cohort), set()).add(node)
            for owner in ids_from_bytes(bytes(reveal["key-from"])):
                key_holders.setdefault((round_id, owner), set()).add(node)
    exposed = 0
    for (round_id, owner, cohort), holders in seed_holders.items():
        needed = thresholds[(round_id, owner)]
        if len(holders) < needed:
            continue
        exposed += 1
        assert len(key_holders.get((round_id, owner), set())) < needed, "both secrets of one node revealed"
        owner_signed = (signed_cohorts.get((round_id, owner)), fast_cohorts.get((round_id, owner)))
        assert cohort in owner_signed, "a seed revealed for a cohort its owner did not sign"
        members = set(ids_from_bytes(cohort))
        assert owner in members and len(members) >= MIN_COHORT
        assert cohort_signers[(round_id, cohort)] >= members
    event(f"seeds revealed for {exposed} nodes")
