"""How simulation splits the federated pool across nodes (IID, label skew, shards).

Real units hold different kinds of material in different amounts; the non-IID
schemes reproduce that so strategies can be compared under realistic skew. Every
scheme is a pure function of (labels, number of nodes, settings, seed), so each
simulated node computes the same partition on its own and takes its part.
"""

import logging
from collections.abc import Sequence

import numpy as np

from fedtriage.errors import ConfigError
from fl_protocol.settings import PartitionSettings
from fl_protocol.settings.node import PARTITION_SCHEMES

logger = logging.getLogger(__name__)


def partition_indices(
    labels: np.ndarray, num_nodes: int, settings: PartitionSettings, seed: int
) -> list[np.ndarray]:
    """Disjoint, sorted int64 index arrays, one per node, each of >= min_samples_per_node.

    They cover every sample, except with "shards" when num_nodes * labels_per_node is
    below the number of classes: classes no node is dealt are then left out (logged).
    """
    labels = np.asarray(labels).reshape(-1)
    if num_nodes < 1:
        raise ConfigError("federation.num_nodes", f"must be >= 1, got {num_nodes}")
    minimum = settings.min_samples_per_node
    if minimum < 1:
        raise ConfigError("partition.min_samples_per_node", f"must be >= 1, got {minimum}")
    if num_nodes * minimum > len(labels):
        raise ConfigError(
            "federation.num_nodes",
            f"{num_nodes} nodes need at least {num_nodes * minimum} samples ({minimum} each, "
            f"partition.min_samples_per_node), the federated pool has {len(labels)}; "
            "use fewer nodes or larger holdings",
        )
    rng = np.random.default_rng(seed)
    if settings.scheme == "iid":
        parts = np.array_split(rng.permutation(len(labels)), num_nodes)
    elif settings.scheme == "dirichlet":
        parts = _dirichlet(labels, num_nodes, settings.alpha, minimum, rng)
    elif settings.scheme == "shards":
        parts = _shards(labels, num_nodes, settings.labels_per_node, minimum, rng)
    else:
        raise ConfigError(
            "partition.scheme", f"unknown value {settings.scheme!r}; choose one of {', '.join(PARTITION_SCHEMES)}"
        )
    return [np.sort(part).astype(np.int64) for part in parts]


def class_histograms(labels: np.ndarray, parts: list[np.ndarray], num_classes: int) -> list[list[int]]:
    """Per node, the number of its samples in each class."""
    labels = np.asarray(labels).reshape(-1)
    return [np.bincount(labels[part], minlength=num_classes)[:num_classes].tolist() for part in parts]


def format_histograms(histograms: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """A table with a row per node and a column per class, for logs and the console."""
    header = ["node", *classes, "total"]
    rows = [[str(node), *(str(count) for count in counts), str(sum(counts))] for node, counts in enumerate(histograms)]
    widths = [max(len(row[column]) for row in (header, *rows)) for column in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in (header, *rows)]
    return "\n".join(lines)


def _dirichlet(
    labels: np.ndarray, num_nodes: int, alpha: float, minimum: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Deal `minimum` samples per node at random, then each class by Dirichlet(alpha) proportions.

    Dealing the minimum first always succeeds (no resampling loop) and leaves the
    skew of small alpha intact for the remaining samples.
    """
    if alpha <= 0:
        raise ConfigError("partition.alpha", f"must be > 0, got {alpha}")
    order = rng.permutation(len(labels))
    dealt = num_nodes * minimum
    pieces: list[list[np.ndarray]] = [[order[node * minimum : (node + 1) * minimum]] for node in range(num_nodes)]
    rest = order[dealt:]
    for label in np.unique(labels):
        members = rest[labels[rest] == label]
        proportions = rng.dirichlet(np.full(num_nodes, alpha))
        if not np.all(np.isfinite(proportions)) or proportions.sum() <= 0:  # underflow at tiny alpha
            proportions = np.eye(num_nodes)[rng.integers(num_nodes)]
        counts = rng.multinomial(len(members), proportions / proportions.sum())
        for node, piece in enumerate(np.split(members, np.cumsum(counts)[:-1])):
            pieces[node].append(piece)
    return [np.concatenate(node_pieces) for node_pieces in pieces]


def _shards(
    labels: np.ndarray, num_nodes: int, labels_per_node: int, minimum: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Each node holds exactly `labels_per_node` classes, dealt cyclically from a shuffled class list."""
    classes = np.unique(labels)
    if labels_per_node < 1:
        raise ConfigError("partition.labels_per_node", f"must be >= 1, got {labels_per_node}")
    if labels_per_node > len(classes):
        raise ConfigError(
            "partition.labels_per_node",
            f"{labels_per_node} labels per node, but the federated pool has only {len(classes)} classes",
        )
    order = rng.permutation(classes)
    holders: dict[int, list[int]] = {int(label): [] for label in classes}
    for node in range(num_nodes):
        for slot in range(labels_per_node):
            holders[int(order[(node * labels_per_node + slot) % len(classes)])].append(node)

    pieces: list[list[np.ndarray]] = [[np.empty(0, dtype=np.int64)] for _ in range(num_nodes)]
    for label, nodes in holders.items():
        if not nodes:
            continue
        members = rng.permutation(np.flatnonzero(labels == label))
        for node, piece in zip(nodes, np.array_split(members, len(nodes))):
            pieces[node].append(piece)
    unused = [label for label, nodes in holders.items() if not nodes]
    if unused:
        logger.warning(
            "shards: %d nodes x %d labels leave classes %s with no node; their %d samples are not used",
            num_nodes,
            labels_per_node,
            unused,
            int(np.isin(labels, unused).sum()),
        )
    parts = [np.concatenate(node_pieces) for node_pieces in pieces]
    for node, part in enumerate(parts):
        if len(part) < minimum:
            raise ConfigError(
                "partition.min_samples_per_node",
                f"shards give node {node} only {len(part)} samples, fewer than {minimum}; "
                "use fewer nodes (federation.num_nodes) or more partition.labels_per_node",
            )
    return parts
