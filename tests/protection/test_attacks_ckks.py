"""Attacks on CKKS mode by a coordinator that asks nodes to decrypt what it likes.

Finding 8 of the review: a node decrypted any ciphertext it was sent, holding no round
state, without limit; the simulation's coordinator side wrote the nodes' secret key.
Here real CKKS nodes (`attach_protection`) run an honest round, then the coordinator
turns attacker with what it saw: every node's ciphertexts and signatures.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts
from flwr.app import ConfigRecord, Message, RecordDict

from cli.simulation.kits import provision_simulated_kits
from fl_protocol import records
from fl_protocol.protection import messages
from fl_protocol.protection.ckks_contexts import PUBLIC_FILE, SECRET_FILE, server_context, slot_count
from fl_protocol.protection.secagg.wire import ids_to_bytes
from fl_protocol.run_config import load_settings
from fl_server.protection import build_update_aggregation
from fl_server.strategy_factory import build_strategy
from tests.protection.test_attacks_sums import NODES, VALUES, Federation, run_settings

pytestmark = pytest.mark.attack


@pytest.fixture
def honest_round(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A CKKS federation after one honest round, and the coordinator's view of it."""
    federation = Federation(tmp_path, run_settings("secure=ckks"))
    aggregation = build_update_aggregation(federation.settings)
    outcome = aggregation.train_round(
        federation.exchange, build_strategy(federation.settings), 1, federation.content[records.ARRAYS_KEY]
    )
    assert outcome.failure is None, outcome.failure
    masked = {
        reply.metadata.src_node_id: reply.content[messages.MASKED_RECORD]
        for reply in federation.grid.received if reply.has_content() and messages.MASKED_RECORD in reply.content
    }
    round_id = bytes(
        next(m for m in federation.grid.delivered if m.metadata.message_type == messages.SECAGG_TRAIN)
        .content[messages.PEERS_RECORD]["round-id"]
    )
    decrypted_by = next(
        reply.metadata.src_node_id for reply in federation.grid.received
        if reply.has_content() and messages.CKKS_PLAIN_SUM in reply.content
    )
    return federation, masked, round_id, decrypted_by


def decrypt_request(node: int, round_id: bytes, senders: list[int], masked: dict, **replace: object) -> Message:
    record = {
        "round-id": round_id,
        "senders": ids_to_bytes(senders),
        "chunks": [bytes(chunk) for sender in senders for chunk in masked[sender]["attachments"]],
        "signatures": [bytes(masked[sender]["attachments-sig"]) for sender in senders],
        "length": VALUES,
    }
    record.update(replace)
    return Message(RecordDict({messages.CKKS_SUM_RECORD: ConfigRecord(record)}), dst_node_id=node,
                   message_type=messages.CKKS_DECRYPT)


def ask(federation, message: Message) -> Message:  # type: ignore[no-untyped-def]
    (reply,) = federation.grid.send_and_receive([message])
    return reply


def test_ckks_decryption_a_node_refuses_to_decrypt_one_nodes_ciphertext(honest_round) -> None:  # type: ignore[no-untyped-def]
    federation, masked, round_id, decrypted_by = honest_round
    victim = NODES[0]
    helper = next(node for node in NODES if node != decrypted_by)
    reply = ask(federation, decrypt_request(helper, round_id, [victim], masked))
    assert reply.has_error() and "not from exactly the cohort" in reply.error.reason


def test_ckks_decryption_a_node_refuses_a_ciphertext_its_sender_did_not_sign(honest_round) -> None:  # type: ignore[no-untyped-def]
    federation, masked, round_id, decrypted_by = honest_round
    helper = next(node for node in NODES if node != decrypted_by)
    # The coordinator encrypts values of its own choice (zeros for everyone but the victim) with the public key.
    public = server_context(federation.kit.path)
    zeros = ts.ckks_vector(public, [0.0] * min(VALUES, slot_count(federation.settings.secure.ckks))).serialize()
    chunks = [bytes(masked[NODES[0]]["attachments"][0])] + [zeros] * (len(NODES) - 1)
    reply = ask(federation, decrypt_request(helper, round_id, NODES, masked, chunks=chunks))
    assert reply.has_error() and "not the ones it signed" in reply.error.reason


def test_ckks_decryption_a_node_decrypts_once_a_round_and_never_without_one(honest_round) -> None:  # type: ignore[no-untyped-def]
    federation, masked, round_id, decrypted_by = honest_round
    again = ask(federation, decrypt_request(decrypted_by, round_id, NODES, masked))
    assert again.has_error() and "once a round" in again.error.reason
    other_round = ask(federation, decrypt_request(decrypted_by, b"X" * 16, NODES, masked))
    assert other_round.has_error() and "unmasked no such round" in other_round.error.reason


def test_ckks_decryption_an_honest_cohort_sum_decrypts_with_the_nodes_noise(honest_round) -> None:  # type: ignore[no-untyped-def]
    federation, masked, round_id, decrypted_by = honest_round
    helper = next(node for node in NODES if node != decrypted_by)
    reply = ask(federation, decrypt_request(helper, round_id, NODES, masked))
    assert reply.has_content()
    values = reply.content[messages.CKKS_PLAIN_SUM]["sum"].numpy()
    from experiments.secure_bench_apps import node_update
    from tests.protection.test_attacks_sums import SPREAD

    truth = np.sum([node_update(node, VALUES, SPREAD) for node in NODES], axis=0)
    assert 0 < np.max(np.abs(values - truth)) < 1e-6  # the decryption noise (std 1e-7), nothing more


def test_ckks_key_the_coordinators_kit_and_output_hold_no_secret_key(tmp_path: Path) -> None:
    settings = provision_simulated_kits(
        dataclasses.replace(load_settings(["secure=ckks", "tracking.enabled=false"]), output_dir=str(tmp_path))
    )
    coordinator = Path(str(settings.kit))
    assert (coordinator / PUBLIC_FILE).is_file() and not (coordinator / SECRET_FILE).exists()
    assert not server_context(coordinator).is_private()
    secret_files = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob(SECRET_FILE))
    assert secret_files == [Path("kits") / f"node-{index}" / SECRET_FILE for index in range(len(secret_files))]
    assert len(secret_files) == settings.federation.num_nodes


def test_ckks_key_holders_sign_one_cohort_a_round_never_the_fast_path(honest_round) -> None:  # type: ignore[no-untyped-def]
    """Review finding: two complete cohorts of one round, decrypted by two nodes, differ by one node's update.

    A node that can decrypt signs only at the consistency stage, once; so a round has one complete cohort.
    """
    federation, _, round_id, _ = honest_round
    shares = [reply.content[messages.SHARES_RECORD] for reply in federation.grid.received
              if reply.has_content() and messages.SHARES_RECORD in reply.content]
    assert shares and all(bytes(record["cohort-sig"]) == b"" for record in shares)
    consistency = [m for m in federation.grid.delivered if m.metadata.message_type == messages.SECAGG_CONSISTENCY]
    assert len(consistency) == len(NODES)
