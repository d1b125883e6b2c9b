"""How a model is scored on a dataset: the same numbers on every node and on the server."""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset


@dataclass(frozen=True)
class EvaluationResult:
    """Scores of one model on one dataset; NaN scores when the dataset was empty."""

    loss: float
    accuracy: float
    macro_f1: float
    roc_auc: float | None
    num_examples: int

    def to_metrics(self, prefix: str = "eval-") -> dict[str, float]:
        """Flat metrics for a Flower MetricRecord or MLflow; ROC-AUC only when defined."""
        metrics = {
            f"{prefix}loss": self.loss,
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}macro-f1": self.macro_f1,
        }
        if self.roc_auc is not None:
            metrics[f"{prefix}roc-auc"] = self.roc_auc
        return metrics


def evaluate_model(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int,
    device: torch.device | str = "cpu",
    num_classes: int | None = None,
) -> EvaluationResult:
    """Mean cross-entropy, accuracy, macro-F1 and (two classes only) ROC-AUC of `model`.

    Macro-F1 weighs every class alike, so a node that misses its rare classes cannot
    hide behind its common ones; with `num_classes` set, classes absent from the
    dataset count too (as 0) and all nodes average over the same classes. The model is
    moved to `device` and left there; its train/eval modes are restored afterwards.
    """
    modes = {module: module.training for module in model.modules()}
    model.to(device)
    model.eval()
    try:
        labels, logits = _predict(model, dataset, batch_size, torch.device(device))
    finally:
        for module, training in modes.items():
            module.training = training

    num_examples = len(labels)
    if num_examples == 0:
        return EvaluationResult(math.nan, math.nan, math.nan, None, 0)
    width = logits.shape[1]
    if num_classes is not None and width != num_classes:
        raise ValueError(f"the model scores {width} classes, expected num_classes={num_classes}")

    from sklearn.metrics import f1_score  # on use: triage scores without evaluating, and skips sklearn

    loss = F.cross_entropy(logits, labels, reduction="mean").item()
    predicted = logits.argmax(dim=1).numpy()
    truth = labels.numpy()
    class_ids = list(range(num_classes)) if num_classes is not None else None
    return EvaluationResult(
        loss=float(loss),
        accuracy=float((predicted == truth).mean()),
        macro_f1=float(f1_score(truth, predicted, average="macro", labels=class_ids, zero_division=0)),
        roc_auc=_binary_roc_auc(logits, truth),
        num_examples=num_examples,
    )


def _predict(
    model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """All labels and logits of `dataset`, gathered on the CPU."""
    all_labels: list[torch.Tensor] = []
    all_logits: list[torch.Tensor] = []
    with torch.no_grad():
        for images, labels in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            all_logits.append(model(images.to(device)).float().cpu())
            all_labels.append(torch.as_tensor(labels, dtype=torch.long).cpu())
    if not all_labels:
        return torch.empty(0, dtype=torch.long), torch.empty(0, 0)
    return torch.cat(all_labels), torch.cat(all_logits)


def _binary_roc_auc(logits: torch.Tensor, truth: np.ndarray) -> float | None:
    """ROC-AUC of the positive-class probability; None unless both of two classes occur."""
    if logits.shape[1] != 2 or set(np.unique(truth).tolist()) != {0, 1}:
        return None
    from sklearn.metrics import roc_auc_score

    positive = torch.softmax(logits, dim=1)[:, 1].numpy()
    return float(roc_auc_score(truth, positive))
