"""One SecAgg+ session as both sides run it: stages, signatures, vector layout.

Stages (one `NodeExchange` each; `setup` only for nodes without run keys yet, `dispute`
only when a node reports a bad box; their message types and record names are
`fl_protocol.protection.messages`):

0. setup       (`query.secagg_setup`): the coordinator's signed run key goes out; each
   node checks it against its roster and answers with its run encryption key `c`,
   signed with its identity key, and a key-confirmation tag.
1. share keys  (`query.secagg_share_keys`): with the participants' signed `c` keys, each
   node draws a fresh mask key pair `s` and self-mask seed `b`, Shamir-shares `b` and the
   `s` private key among its neighbours and itself, and sends `s`'s public key, its
   threshold and a commitment to `b` (signed), with one signed box of shares per
   neighbour (`sealed_shares`), and (unless it holds a CKKS key) its signature over all
   participants as the cohort: the fast path. Small messages: no model yet.
2. masked      (`train`, or `query.secagg_evaluate` for evaluation only): each node gets
   the global model, its surviving neighbours' signed `s` keys and the boxes addressed
   to it; it evaluates and trains, encodes its contribution and answers with
   y = contribution + PRG(b) + sum of +-PRG(pairwise seed). A box its sender signed but
   that does not open is reported in a signed accusation.
   dispute     (`query.secagg_dispute`): an accused node proves what its box held by
   revealing that box's key; whichever of the two lied is dropped.
3. consistency (`query.secagg_consistency`), only when the cohort (the nodes whose vectors
   the server sums) is not all participants with their stage-1 signatures: the server
   names the cohort; each node in it signs that set, once a round.
4. unmask      (`query.secagg_unmask`): with the cohort's signatures; a node that sees
   every member's signature over the very set it signed reveals, for each neighbour in the
   cohort, its share of `b`, and for each neighbour outside it, its share of the `s`
   private key: never both for one node, and nothing for a cohort below its policy's
   minimum. The server rebuilds the seeds, checks them against what their owners
   signed, and removes the masks from the sum.

Keys ahead: when every participant is in the cohort, the unmask request may also carry
the next session's stage-1 request for the same participants; a node answers it beside
its reveal, after this round's secrets are spent, with every check of stage 1 (a refusal
leaves the reveal alone). The next session starts at stage 2 if its participants are
exactly those and all of them shared; otherwise it runs its own stage 1. A steady round
is then two exchanges with the nodes instead of three.

Every reply after setup carries an HMAC under a key derived from the node's `c` key
and the server's run key: a tampered reply is detected and its node dropped. What a
party vouches for is signed with its identity key and checked against the pinned roster
(`fl_protocol.identity`); the purposes below say what each signature means.
"""

import math
from collections.abc import Sequence

from fl_protocol.protection.modes import Weighting
from fl_protocol.protection.secagg import keys
from fl_protocol.protection.secagg.contribution import ContributionLayout, Segment
from fl_protocol.protection.secagg.wire import id_bytes
from fl_protocol.settings import SecAggSettings

# Purposes of derived keys (fl_protocol.protection.secagg.keys.derive_key).
AUTH_PURPOSE = "node-auth"
MASK_PURPOSE = "pairwise-mask"

# Segments of the contribution vector besides the model update.
UPDATE = "update"
WEIGHT = "weight"  # 1 if trained (weighting=equal), else min(training examples, max_weight); exact
EXAMPLES = "examples"  # training examples (weighting=examples only), exact
TRAIN_LOSS = "train-loss"  # times the node's weight in the mean
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
    """The vector layout for a model update of `update_values` values (0: evaluation only).

    Every segment says what one honest node can send in it, so that the server can refuse
    a sum no honest cohort could have made (`ContributionLayout.impossible_sums`).
    """
    weighted_one = 1.0
    scale = settings.weight_scale
    # weighting=equal: no count leaves a node, so the example segment carries zeros.
    examples = None if settings.weighting is Weighting.examples else 0
    return ContributionLayout(
        [
            Segment(UPDATE, update_values, settings.clip_range),
            Segment(WEIGHT, 1, limit=scale),
            Segment(EXAMPLES, 1, limit=examples),
            Segment(TRAIN_LOSS, 1, settings.metric_bound, nonnegative=True),
            Segment(CLIPPED, 1, limit=update_values),
            Segment(EVAL_WEIGHT, 1, limit=scale),
            Segment(EVAL_LOSS, 1, settings.metric_bound, nonnegative=True),
            Segment(EVAL_ACCURACY, 1, weighted_one, nonnegative=True),
            Segment(EVAL_F1, 1, weighted_one, nonnegative=True),
            Segment(EVAL_ROC_WEIGHT, 1, limit=scale),
            Segment(EVAL_ROC_AUC, 1, weighted_one, nonnegative=True),
            Segment(LOCAL_EPSILON, 1),
            Segment(TRAIN_LOSS_AT_BOUND, 1, limit=1),
            Segment(EVAL_LOSS_AT_BOUND, 1, limit=1),
        ],
        bits=settings.bits_for(max_contributors),
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
SHARE_BOX = "secagg/share-box"  # a node: in this round, this is the box of shares I sealed for node R
ACCUSATION = "secagg/accusation"  # a node: in this round, the box node S signed for me does not open
COHORT = "secagg/cohort"  # a node: in this round, the sum is over exactly this set of nodes
ATTACHMENTS = "secagg/attachments"  # a node: in this round, these are my ciphertexts (CKKS)


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


def box_signed(round_id: bytes, sender: int, receiver: int, box: bytes) -> tuple[str, bytes, bytes, bytes, bytes]:
    """The purpose and parts a sender signs for one box (`SHARE_BOX`)."""
    return SHARE_BOX, round_id, id_bytes(sender), id_bytes(receiver), box


def accusation_signed(round_id: bytes, accuser: int, accused: int) -> tuple[str, bytes, bytes, bytes]:
    """The purpose and parts an accuser signs (`ACCUSATION`)."""
    return ACCUSATION, round_id, id_bytes(accuser), id_bytes(accused)


def cohort_signed(round_id: bytes, cohort: bytes) -> tuple[str, bytes, bytes]:
    """The purpose and parts a node signs for the cohort it was told (`COHORT`; ids sorted, as `wire`)."""
    return COHORT, round_id, cohort


def attachments_signed(round_id: bytes, node: int, attachments: list[bytes]) -> tuple[str, bytes, bytes, bytes]:
    """The purpose and parts a node signs for its ciphertexts (`ATTACHMENTS`)."""
    return ATTACHMENTS, round_id, id_bytes(node), keys.digest(b"".join(keys.digest(item) for item in attachments))
