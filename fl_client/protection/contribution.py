"""What a node contributes to a secure round, encoded for the masked vector.

The weighted delta, the training loss and the evaluation of the model the node
received (and, only under `secure.secagg.weighting=examples`, its example counts) all
go into one vector (layout in
`fl_protocol.protection.secagg.session`), so the server learns them only as sums; in CKKS mode
the encrypted layers' part of the delta is set apart for encryption instead. Central
DP clips the delta's L2 norm here, on the node, before anything leaves it.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fl_client.training import TrainResult
from fl_protocol.protection import array_vector
from fl_protocol.protection.modes import PrivacyMode, ProtectionMode, Weighting
from fl_protocol.protection.secagg import session
from fl_protocol.protection.secagg.contribution import ContributionLayout, EncodedContribution
from fl_protocol.settings import NodeSettings, SecAggSettings
from models import EvaluationResult


@dataclass(frozen=True)
class SecureContribution:
    """The vector to mask, and the weighted delta values CKKS encrypts instead (if any)."""

    encoded: EncodedContribution
    encrypted_update: np.ndarray
    # Bound of the relative L2 error quantization adds to this node's update (0 when it sends none).
    update_error: float = 0.0


def encode_contribution(
    settings: NodeSettings,
    received: Mapping[str, np.ndarray],
    trained: Mapping[str, np.ndarray] | None,
    train: TrainResult | None,
    evaluation: EvaluationResult,
    local_epsilon: float = 0.0,
) -> SecureContribution:
    """The node's contribution (delta omitted if not trained).

    In CKKS mode the values of `secure.ckks.encrypted_layers` are returned apart,
    for encryption; everything else goes into the masked vector.
    """
    sec = settings.secure.secagg
    counts = sec.weighting is Weighting.examples
    delta = np.zeros(0)
    weight = examples = 0
    train_loss = 0.0
    if trained is not None and train is not None:
        delta = array_vector.flatten(trained)
        delta -= array_vector.flatten(received)
        if settings.privacy.mode is PrivacyMode.central:
            norm = float(np.linalg.norm(delta))
            delta *= min(1.0, settings.privacy.clip_norm / norm) if norm > 0 else 1.0
        examples = train.num_examples if counts else 0
        weight = _weight(train.num_examples, sec)
        train_loss = _finite(train.loss)
    alpha = weight / sec.weight_scale
    weighted = alpha * delta
    if settings.secure.mode is ProtectionMode.ckks and weighted.size:
        encrypted = array_vector.selected(received, settings.secure.ckks.encrypted_layers)
        update, encrypted_update = weighted[~encrypted], weighted[encrypted]
    else:
        update, encrypted_update = weighted, weighted[:0]
    eval_weight = _weight(evaluation.num_examples, sec)
    eval_alpha = eval_weight / sec.weight_scale
    roc_alpha = eval_alpha if evaluation.roc_auc is not None else 0.0
    layout = session.layout(update.size, sec, settings.federation.num_nodes)
    values = {
        session.UPDATE: update,
        session.WEIGHT: weight,
        session.EXAMPLES: min(examples, layout.count_limit),
        session.TRAIN_LOSS: alpha * min(train_loss, sec.metric_bound),
        session.EVAL_WEIGHT: eval_weight,
        session.EVAL_LOSS: eval_alpha * min(_finite(evaluation.loss), sec.metric_bound),
        session.EVAL_ACCURACY: eval_alpha * _finite(evaluation.accuracy),
        session.EVAL_F1: eval_alpha * _finite(evaluation.macro_f1),
        session.EVAL_ROC_WEIGHT: eval_weight if evaluation.roc_auc is not None else 0,
        session.EVAL_ROC_AUC: roc_alpha * _finite(evaluation.roc_auc),
        session.LOCAL_EPSILON: min(round(local_epsilon * session.EPSILON_RESOLUTION), layout.count_limit),
        session.TRAIN_LOSS_AT_BOUND: int(train is not None and train_loss >= sec.metric_bound),
        session.EVAL_LOSS_AT_BOUND: int(_finite(evaluation.loss) >= sec.metric_bound),
    }
    # The clipped-value count comes out of the same pass that clips (into CLIPPED).
    encoded = layout.encode(values, clipped_into=session.CLIPPED)
    return SecureContribution(encoded, encrypted_update, _update_error(layout, update))


def _update_error(layout: ContributionLayout, update: np.ndarray) -> float:
    """The most quantization can move this node's update, relative to its size: half a step per value.

    Under weighting=examples the update is scaled by its weight before quantization, so a
    node with few examples against a large `max_weight` loses precision. A bound, not a
    decoding of the vector: one pass over the update, however large.
    """
    norm = float(np.linalg.norm(update))
    if not update.size or norm == 0:
        return 0.0
    return layout.step(session.UPDATE) / 2 * math.sqrt(update.size) / norm


def _weight(examples: int, sec: SecAggSettings) -> int:
    """The node's exact weight: 1 for any examples (weighting=equal), else its capped count."""
    if sec.weighting is Weighting.equal:
        return int(examples > 0)
    return min(examples, sec.max_weight)


def _finite(value: float | None) -> float:
    return 0.0 if value is None or not math.isfinite(value) else float(value)

