"""The message types and record names of every protection stage, for both sides.

The server sends these message types and the node registers its handlers for them
from the same constants (`action` gives the name a ClientApp's `@app.query` takes), so
the two can never drift apart. Stage 2 of a secure round rides on Flower's own `train`
message, so the strategy's instruction and its config travel unchanged.
"""

from flwr.app import MessageType

# Secure aggregation (SecAgg+), see `fl_protocol.protection.secagg.session`.
SECAGG_SETUP = f"{MessageType.QUERY}.secagg_setup"
SECAGG_SHARE_KEYS = f"{MessageType.QUERY}.secagg_share_keys"
SECAGG_TRAIN = MessageType.TRAIN
SECAGG_EVALUATE = f"{MessageType.QUERY}.secagg_evaluate"
SECAGG_DISPUTE = f"{MessageType.QUERY}.secagg_dispute"
SECAGG_CONSISTENCY = f"{MessageType.QUERY}.secagg_consistency"
SECAGG_UNMASK = f"{MessageType.QUERY}.secagg_unmask"
# CKKS mode: one node decrypts the summed ciphertexts.
CKKS_DECRYPT = f"{MessageType.QUERY}.ckks_decrypt"

# The protocol's own queries, in the order a round uses them: a protected node answers all.
QUERIES = (
    SECAGG_SETUP, SECAGG_SHARE_KEYS, SECAGG_EVALUATE, SECAGG_DISPUTE, SECAGG_CONSISTENCY, SECAGG_UNMASK, CKKS_DECRYPT
)

# Record names inside messages.
SETUP_RECORD = "secagg-setup"
KEYS_RECORD = "secagg-keys"
ROUND_RECORD = "secagg-round"
SHARES_RECORD = "secagg-shares"
PEERS_RECORD = "secagg-peers"
MASKED_RECORD = "secagg-masked"
MASKED_ARRAYS = "secagg-vector"
DISPUTE_RECORD = "secagg-dispute"
DISPUTE_REPLY = "secagg-dispute-reply"
COHORT_RECORD = "secagg-cohort"
COHORT_SIGNATURE = "secagg-cohort-signature"
UNMASK_RECORD = "secagg-unmask"
REVEAL_RECORD = "secagg-reveal"
CKKS_SUM_RECORD = "ckks-sum"
CKKS_PLAIN_SUM = "ckks-plain-sum"


def action(message_type: str) -> str:
    """The action a ClientApp registers for a query message type (`query.x` -> `x`)."""
    category, _, name = message_type.partition(".")
    if category != MessageType.QUERY or not name:
        raise ValueError(f"{message_type!r} is not a query message type")
    return name
