"""Stratified, seeded splits of holdings: central test set, and a node's train/val.

Stratified so that a small or skewed set keeps its class mix in both parts, and
seeded so that every process computing a split gets the same one (the server's
held-out test set never overlaps what the nodes train on).
"""

import numpy as np

from fedtriage.errors import ConfigError
from fl_client.holdings.holdings import Holdings


def split_holdout(holdings: Holdings, test_fraction: float, seed: int) -> tuple[Holdings, Holdings]:
    """(pool, test): `test_fraction` of each class held out for central evaluation."""
    _check_fraction(test_fraction, "holdings.test_fraction")
    return _split(holdings, test_fraction, seed)


def train_val_split(holdings: Holdings, val_fraction: float, seed: int) -> tuple[Holdings, Holdings]:
    """(train, val) of one node; with val_fraction > 0 and 2+ examples both are non-empty."""
    _check_fraction(val_fraction, "holdings.val_fraction")
    return _split(holdings, val_fraction, seed)


def _check_fraction(fraction: float, key: str) -> None:
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(key, f"must be in [0, 1), got {fraction}")


def _split(holdings: Holdings, fraction: float, seed: int) -> tuple[Holdings, Holdings]:
    labels = holdings.labels.numpy()
    taken = _stratified_sample(labels, _share(len(labels), fraction), np.random.default_rng(seed))
    rest = np.setdiff1d(np.arange(len(labels)), taken, assume_unique=True)
    return holdings.subset(rest), holdings.subset(taken)


def _share(total: int, fraction: float) -> int:
    """round(fraction * total), but at least 1 and leaving at least 1 when both are possible."""
    if fraction == 0.0 or total < 2:
        return 0
    return int(np.clip(np.floor(fraction * total + 0.5), 1, total - 1))


def _stratified_sample(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of `count` examples, apportioned to classes by largest remainder."""
    classes, sizes = np.unique(labels, return_counts=True)
    if count == 0 or len(classes) == 0:
        return np.empty(0, dtype=np.int64)
    quotas = count * sizes  # exact integers: quota of class c is quotas[c] / len(labels)
    per_class = quotas // len(labels)
    leftover = count - int(per_class.sum())
    by_remainder = np.argsort(-(quotas % len(labels)), kind="stable")
    per_class[by_remainder[:leftover]] += 1
    chosen = [
        rng.permutation(np.flatnonzero(labels == label))[:take] for label, take in zip(classes, per_class)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)
