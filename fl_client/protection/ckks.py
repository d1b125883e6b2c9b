"""The node's side of CKKS mode: encrypt the weighted delta, decrypt the federation's sum.

Only nodes hold the secret context. The server sends back the sum of everyone's
ciphertexts and one node decrypts it; what it returns is the aggregate, which the
server learns in every mode anyway.
"""

import numpy as np
import tenseal as ts
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict

from fl_client.protection import secagg
from fl_protocol import records
from fl_protocol.protection import messages
from fl_protocol.protection.ckks_contexts import node_context, slot_count
from fl_protocol.protection.secagg import keys
from fl_protocol.settings import CkksSettings

SUM_RECORD = messages.CKKS_SUM_RECORD
PLAIN_SUM = messages.CKKS_PLAIN_SUM


def encrypt(values: np.ndarray, settings: CkksSettings) -> list[bytes]:
    """`values` as serialized CKKS vectors of at most one slot count each."""
    context = node_context(settings)
    slots = slot_count(settings)
    return [
        ts.ckks_vector(context, values[start : start + slots].tolist()).serialize()
        for start in range(0, values.size, slots)
    ]


def decrypt(chunks: list[bytes], length: int, settings: CkksSettings) -> np.ndarray:
    """The first `length` values of the serialized ciphertexts `chunks`, as float64."""
    secret = node_context(settings)
    values = np.concatenate([np.asarray(ts.ckks_vector_from(secret, chunk).decrypt()) for chunk in chunks])[:length]
    return values.astype(np.float64)


def decrypt_sum(msg: Message, context: Context, settings: CkksSettings, node_info: ConfigRecord) -> Message:
    """Decrypt the summed ciphertexts the server sends; answer with the plain sum, authenticated."""
    request = msg.content[SUM_RECORD]
    chunks = [bytes(chunk) for chunk in request["chunks"]]
    values = decrypt(chunks, int(request["length"]), settings)
    tag = keys.tag(
        secagg.auth_key(context), b"ckks-decrypt", len(chunks).to_bytes(8, "big"), *chunks, values.tobytes()
    )
    content = RecordDict(
        {
            PLAIN_SUM: ArrayRecord({"sum": Array(values)}),
            SUM_RECORD: ConfigRecord({"tag": tag}),
            records.NODE_INFO_KEY: node_info,
        }
    )
    return Message(content, reply_to=msg)
