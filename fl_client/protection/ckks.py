"""The node's side of CKKS mode: encrypt the weighted delta, decrypt the cohort's sum once.

The secret context comes from the node's own kit. A node decrypts only a sum it adds
itself, of ciphertexts signed by exactly the members of the cohort it signed for that
round (`fl_client.protection.secagg`), once per round, and adds noise of its policy's
`ckks.decryption_noise_std` to what it returns (approximate decryption otherwise leaks
key material, Li & Micciancio 2021). What it returns is the aggregate, which the
server learns in every mode anyway.
"""

import secrets

import numpy as np
import tenseal as ts
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fl_client.kit import NodeKit
from fl_client.protection import secagg
from fl_protocol import records
from fl_protocol.identity.keys import verify
from fl_protocol.protection import messages
from fl_protocol.protection.ckks_contexts import node_context, slot_count
from fl_protocol.protection.secagg import keys, session
from fl_protocol.protection.secagg.wire import ids_from_bytes
from fl_protocol.settings import CkksSettings

SUM_RECORD = messages.CKKS_SUM_RECORD
PLAIN_SUM = messages.CKKS_PLAIN_SUM


def encrypt(values: np.ndarray, settings: CkksSettings, kit: NodeKit) -> list[bytes]:
    """`values` as serialized CKKS vectors of at most one slot count each."""
    context = node_context(kit.path)
    slots = slot_count(settings)
    return [
        ts.ckks_vector(context, values[start : start + slots].tolist()).serialize()
        for start in range(0, values.size, slots)
    ]


@secagg.refuses_malformed
def decrypt_sum(msg: Message, context: Context, kit: NodeKit, node_info: ConfigRecord) -> Message:
    """Add the cohort's signed ciphertexts, decrypt that sum once, answer with it (noised, authenticated)."""
    request = msg.content[SUM_RECORD]
    finished = context.state.get(secagg.FINISHED_STATE)
    round_id = bytes(request["round-id"])
    if finished is None or bytes(finished["round-id"]) != round_id:
        raise secagg.ProtocolViolation("this node unmasked no such round: it decrypts only its last round's sum")
    if finished.get("decrypted", False):
        raise secagg.ProtocolViolation("this node already decrypted this round's sum: it decrypts once a round")
    senders = ids_from_bytes(bytes(request["senders"]))
    if bytes(request["senders"]) != bytes(finished["cohort"]):
        raise secagg.ProtocolViolation("the ciphertexts are not from exactly the cohort this node signed")
    chunks = [bytes(chunk) for chunk in request["chunks"]]
    signatures = [bytes(sig) for sig in request["signatures"]]
    per_sender, extra = divmod(len(chunks), max(len(senders), 1))
    if extra or len(signatures) != len(senders) or per_sender == 0:
        raise secagg.ProtocolViolation("the server's ciphertexts and signatures do not line up")
    roster_keys = secagg.roster_keys(finished)
    secret = node_context(kit.path)
    total: list[ts.CKKSVector] | None = None
    for index, (sender, signature) in enumerate(zip(senders, signatures)):
        own = chunks[index * per_sender : (index + 1) * per_sender]
        if not verify(roster_keys[sender], signature, *session.attachments_signed(round_id, sender, own)):
            raise secagg.ProtocolViolation(f"the ciphertexts of node {sender} are not the ones it signed")
        vectors = [ts.ckks_vector_from(secret, chunk) for chunk in own]
        total = vectors if total is None else [a + b for a, b in zip(total, vectors)]
    finished["decrypted"] = True  # before decrypting: a failure below burns this round's one decryption
    assert total is not None
    values = np.concatenate([np.asarray(vector.decrypt()) for vector in total])[: int(request["length"])]
    noise = np.random.default_rng(secrets.randbits(128)).normal(0.0, kit.policy.ckks.decryption_noise_std, values.size)
    values = values.astype(np.float64) + noise
    tag = keys.tag(secagg.auth_key(context), b"ckks-decrypt", round_id, values.tobytes())
    content = RecordDict(
        {
            PLAIN_SUM: ArrayRecord({"sum": Array(values)}),
            SUM_RECORD: ConfigRecord({"tag": tag}),
            records.NODE_INFO_KEY: node_info,
        }
    )
    return Message(content, reply_to=msg)
