"""Membership inference against a released global model: was this image in some node's training set?

Threat played: anyone holding the final global model (the coordinator, any unit, whoever the
model reaches) and a pool of candidate images from the training distribution, half of which
the federation trained on. Two attacks:

- loss threshold (Yeom et al. 2018): members have lower loss; the score is minus the loss.
- LiRA (Carlini et al. 2022), online with a global variance: shadow models trained as the
  target was (same federation, training and DP), each on a random half of the candidates,
  give per image the distribution of its logit-scaled confidence when trained on and when
  not; the score is the likelihood ratio of the target's confidence under the two.

Figures: ROC AUC, and the membership advantage max over thresholds of (TPR - FPR) (Yeom et
al.), 0 when the attack learns nothing. The threshold is chosen on the scored set itself: an
upper bound of what a threshold fixed in advance achieves.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve

from fl_protocol.settings import NodeSettings
from privacy_audit.audited_model import ModelArrays, build_audited_model

LOSS_THRESHOLD = "loss-threshold"
LIRA = "lira"
# The smallest spread LiRA fits: a confidence all shadows agree on must not divide by zero.
_MIN_STD = 1e-3


@dataclass(frozen=True)
class AttackScore:
    auc: float
    advantage: float


@dataclass(frozen=True)
class ModelOutputs:
    """Per candidate image: the model's cross-entropy loss and logit-scaled confidence in the true label."""

    loss: np.ndarray
    confidence: np.ndarray
    correct: np.ndarray


def model_outputs(
    settings: NodeSettings, arrays: ModelArrays, images: torch.Tensor, labels: torch.Tensor
) -> ModelOutputs:
    """What the released model says of each image, as anyone holding it can compute (evaluation mode)."""
    model = build_audited_model(settings, arrays).eval()
    with torch.no_grad():
        logits = model(images).double()
    loss = F.cross_entropy(logits, labels, reduction="none")
    true = logits.gather(1, labels[:, None])[:, 0]
    others = logits.scatter(1, labels[:, None], float("-inf")).logsumexp(dim=1)
    # log(p / (1 - p)) of the true label, computed from logits so that p near 1 keeps its precision.
    confidence = true - others
    return ModelOutputs(loss.numpy(), confidence.numpy(), (logits.argmax(dim=1) == labels).numpy())


def loss_threshold_scores(target: ModelOutputs) -> np.ndarray:
    """Higher for images the model fits better: members, if it overfits."""
    return -target.loss


def lira_scores(target: ModelOutputs, shadows: list[ModelOutputs], shadow_members: np.ndarray) -> np.ndarray:
    """The log likelihood ratio per image of its target confidence: trained on vs not (shadows [S, N] membership).

    An image no shadow trained on (or every shadow did) takes the mean of all images for the side it lacks.
    """
    confidences = np.stack([shadow.confidence for shadow in shadows])
    held = shadow_members.astype(bool)
    std_in = max(float(np.std(confidences[held])), _MIN_STD) if held.any() else _MIN_STD
    std_out = max(float(np.std(confidences[~held])), _MIN_STD) if (~held).any() else _MIN_STD
    mean_in = _masked_mean(confidences, held)
    mean_out = _masked_mean(confidences, ~held)
    return _log_normal(target.confidence, mean_in, std_in) - _log_normal(target.confidence, mean_out, std_out)


def score_attack(is_member: np.ndarray, scores: np.ndarray) -> AttackScore:
    """ROC AUC and membership advantage (max TPR - FPR) of `scores` for telling members apart."""
    false_positive, true_positive, _ = roc_curve(is_member, scores)
    return AttackScore(float(roc_auc_score(is_member, scores)), float(np.max(true_positive - false_positive)))


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per column, the mean of the masked values; the mean of all masked values where a column has none."""
    counts = mask.sum(axis=0)
    overall = float(values[mask].mean()) if mask.any() else float(values.mean())
    sums = np.where(mask, values, 0.0).sum(axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), overall)


def _log_normal(value: np.ndarray, mean: np.ndarray, std: float) -> np.ndarray:
    return -0.5 * ((value - mean) / std) ** 2 - np.log(std)
