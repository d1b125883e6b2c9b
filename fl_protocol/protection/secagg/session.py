"""One SecAgg+ session as both sides run it: stages, key purposes, vector layout.

Stages (one `NodeExchange` each; `setup` only for nodes without run keys yet; their
message types and record names are `fl_protocol.protection.messages`):

0. setup      (`query.secagg_setup`): the server's run public key goes out; each node
   answers with its long-term encryption public key `c` and a key-confirmation tag.
1. share keys (`query.secagg_share_keys`): with the participants' `c` keys, each node
   draws a fresh mask key pair `s` and self-mask seed `b`, Shamir-shares `b` and the
   `s` private key among its neighbours and itself, and sends `s`'s public key with
   one AES-GCM box of shares per neighbour. Small messages: no model yet.
2. masked     (`train`, or `query.secagg_evaluate` for evaluation only): each node
   gets the global model, its surviving neighbours' `s` public keys and the boxes
   addressed to it; it evaluates and trains, encodes its contribution and answers
   with y = contribution + PRG(b) + sum of +-PRG(pairwise seed). Boxes that fail to
   open are reported, and their senders are treated as dropped. Training here, not
   earlier, means no large vector waits in a node's state between stages.
3. unmask     (`query.secagg_unmask`): for every node whose vector is used each
   holder reveals its share of `b`; for every node that dropped after stage 1 it
   reveals its share of the `s` private key, never both for one node. The server
   rebuilds the seeds and removes the masks from the sum.

Every reply after setup carries an HMAC under a key derived from the node's `c` key
and the server's run key: a tampered reply is detected and its node dropped. Keys are
vouched for by identity signatures checked against each party's pinned roster
(`fl_protocol.identity`): the coordinator signs its run key, a node signs its `c` key for
the run and its `s` key, threshold and seed commitment for the round.
"""

import math
from collections.abc import Sequence

from fl_protocol.protection.secagg import keys
from fl_protocol.protection.secagg.contribution import ContributionLayout, Segment
from fl_protocol.protection.secagg.wire import id_bytes
from fl_protocol.settings import SecAggSettings

# Purposes of derived keys (fl_protocol.protection.secagg.keys.derive_key).
AUTH_PURPOSE = "node-auth"
SHARE_BOX_PURPOSE = "share-box"
MASK_PURPOSE = "pairwise-mask"

# Segments of the contribution vector besides the model update.
UPDATE = "update"
WEIGHT = "weight"  # min(training examples, max_weight), exact
EXAMPLES = "examples"  # training examples, exact
TRAIN_LOSS = "train-loss"  # weight-scaled
CLIPPED = "clipped"  # values clipped into range (in practice the update's), filled by encode, exact
EVAL_WEIGHT = "eval-weight"
EVAL_LOSS = "eval-loss"
EVAL_ACCURACY = "eval-accuracy"
EVAL_F1 = "eval-f1"
EVAL_ROC_WEIGHT = "eval-roc-weight"
EVAL_ROC_AUC = "eval-roc-auc"
LOCAL_EPSILON = "local-epsilon"  # summed over nodes (local DP-SGD), exact in 1/1000
# Nodes whose loss reached `metric_bound`, exact: the mean loss is then a bound, not a value.
TRAIN_LOSS_AT_BOUND = "train-loss-at-bound"
EVAL_LOSS_AT_BOUND = "eval-loss-at-bound"

EPSILON_RESOLUTION = 1000


def layout(update_values: int, settings: SecAggSettings, max_contributors: int) -> ContributionLayout:
    """The vector layout for a model update of `update_values` values (0: evaluation only)."""
    weighted_one = 1.0
    return ContributionLayout(
        [
            Segment(UPDATE, update_values, settings.clip_range),
            Segment(WEIGHT, 1),
            Segment(EXAMPLES, 1),
            Segment(TRAIN_LOSS, 1, settings.metric_bound),
            Segment(CLIPPED, 1),
            Segment(EVAL_WEIGHT, 1),
            Segment(EVAL_LOSS, 1, settings.metric_bound),
            Segment(EVAL_ACCURACY, 1, weighted_one),
            Segment(EVAL_F1, 1, weighted_one),
            Segment(EVAL_ROC_WEIGHT, 1),
            Segment(EVAL_ROC_AUC, 1, weighted_one),
            Segment(LOCAL_EPSILON, 1),
            Segment(TRAIN_LOSS_AT_BOUND, 1),
            Segment(EVAL_LOSS_AT_BOUND, 1),
        ],
        bits=settings.quantization_bits,
        max_contributors=max_contributors,
    )


def threshold(shareholders: int, fraction: float) -> int:
    """Shares needed to rebuild a secret held by `shareholders` (at least 2, a majority)."""
    return min(shareholders, max(2, math.ceil(fraction * shareholders), shareholders // 2 + 1))


def share_points(participants: Sequence[int]) -> dict[int, int]:
    """Node id -> its Shamir x coordinate (1-based position among sorted participants)."""
    return {node: index + 1 for index, node in enumerate(sorted(participants))}


def pairwise_sign(node: int, peer: int) -> int:
    """+1 or -1: the pair's mask is added by the lower id and subtracted by the higher."""
    return 1 if node < peer else -1


# Purposes of identity-key signatures (fl_protocol.identity.keys): what each signature vouches for.
SERVER_RUN_KEY = "secagg/server-run-key"  # the coordinator: this run key (id, X25519 public key) is mine
NODE_RUN_KEY = "secagg/node-run-key"  # a node: under this run key, node id N is roster member X with key c
ROUND_KEYS = "secagg/round-keys"  # a node: in this round, my mask key, threshold and seed commitment


def seed_commitment(round_id: bytes, self_seed: bytes) -> bytes:
    """SHA-256 binding a node's self-mask seed: the server checks a rebuilt seed against it.

    The seed is 256 uniformly random bits used once, so its hash reveals nothing usable.
    """
    return keys.digest(b"fedtriage/self-mask-seed" + round_id + self_seed)


def round_keys_signed(
    round_id: bytes, node: int, s_pk: bytes, threshold: int, commitment: bytes
) -> tuple[str, bytes, bytes, bytes, bytes, bytes]:
    """The purpose and parts a node signs for its round keys (`ROUND_KEYS`)."""
    return ROUND_KEYS, round_id, id_bytes(node), s_pk, threshold.to_bytes(8, "big"), commitment
