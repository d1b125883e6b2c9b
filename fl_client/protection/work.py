"""What a node does with a received model, before protection decides what of it may leave.

A node's ClientApp supplies the work (train, evaluate, report its holdings); the
protection attached to the app (`fl_client.protection.dispatch`) decides what of the
results leaves the node and in which form. Benchmarks supply other work (fixed
updates) and get the very same protection.
"""

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fl_client.holdings import HoldingsReport
from fl_client.training import TrainResult
from models import EvaluationResult


@dataclass(frozen=True)
class LocalTraining:
    """One round of local training: the trained model's named arrays and what training measured."""

    trained: dict[str, np.ndarray]
    result: TrainResult


class NodeWork(Protocol):
    """A node's work on the model of one instruction."""

    @property
    def num_classes(self) -> int:
        """Classes the node evaluates over (two: ROC-AUC is reported too)."""

    def evaluate(self) -> EvaluationResult:
        """Score the model as received on the node's validation split (before any `train`)."""

    def train(self) -> LocalTraining:
        """Train the received model on the node's training split."""

    def holdings_report(self) -> HoldingsReport:
        """What the node's holdings loader kept and skipped (counts; stays on the node unless released)."""


class WithheldEvaluation:
    """A node's work whose evaluation its policy withholds: scored on nothing, so nothing of it enters a sum."""

    def __init__(self, work: NodeWork) -> None:
        self._work = work

    @property
    def num_classes(self) -> int:
        return self._work.num_classes

    def evaluate(self) -> EvaluationResult:
        nan = float("nan")
        return EvaluationResult(loss=nan, accuracy=nan, macro_f1=nan, roc_auc=None, num_examples=0)

    def train(self) -> LocalTraining:
        return self._work.train()

    def holdings_report(self) -> HoldingsReport:
        return self._work.holdings_report()
