"""Partitioners: disjoint, complete, seeded, and as skewed as their scheme promises."""

import numpy as np
import pytest

from fedtriage.errors import ConfigError
from fl_client.holdings import class_histograms, format_histograms, partition_indices
from fl_protocol.settings import PartitionSettings

NUM_CLASSES = 10


@pytest.fixture
def labels() -> np.ndarray:
    """1000 samples, 100 per class, in shuffled order."""
    return np.random.default_rng(7).permutation(np.repeat(np.arange(NUM_CLASSES), 100))


def _settings(scheme: str, **overrides: float) -> PartitionSettings:
    values = {"alpha": 0.5, "labels_per_node": 2, "min_samples_per_node": 4, **overrides}
    return PartitionSettings(scheme=scheme, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
def test_parts_are_disjoint_and_cover_every_sample(labels: np.ndarray, scheme: str) -> None:
    parts = partition_indices(labels, 5, _settings(scheme), seed=1)

    assert len(parts) == 5
    assert sum(len(part) for part in parts) == len(labels)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    assert all(part.dtype == np.int64 for part in parts)


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
def test_same_seed_gives_same_parts_and_another_seed_differs(labels: np.ndarray, scheme: str) -> None:
    settings = _settings(scheme)

    first = partition_indices(labels, 5, settings, seed=1)
    again = partition_indices(labels.copy(), 5, _settings(scheme), seed=1)
    other = partition_indices(labels, 5, settings, seed=2)

    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_iid_parts_differ_in_size_by_at_most_one_and_mix_all_classes(labels: np.ndarray) -> None:
    parts = partition_indices(labels[:997], 4, _settings("iid"), seed=3)

    sizes = [len(part) for part in parts]
    assert max(sizes) - min(sizes) <= 1
    for histogram in class_histograms(labels[:997], parts, NUM_CLASSES):
        assert min(histogram) > 0


@pytest.mark.parametrize("seed", range(5))
def test_dirichlet_tiny_alpha_concentrates_each_class_on_one_node_yet_feeds_every_node(
    labels: np.ndarray, seed: int
) -> None:
    parts = partition_indices(labels, 8, _settings("dirichlet", alpha=1e-3, min_samples_per_node=6), seed=seed)

    histograms = np.array(class_histograms(labels, parts, NUM_CLASSES))
    assert min(len(part) for part in parts) >= 6
    share_on_main_node = histograms.max(axis=0) / histograms.sum(axis=0)
    # Dirichlet(1e-3) puts (nearly) all mass on one node; about 1 class in 70 splits in two.
    assert np.mean(share_on_main_node >= 0.9) >= 0.8
    assert np.median(share_on_main_node) >= 0.95


def test_dirichlet_tiny_alpha_meets_a_large_minimum_per_node(labels: np.ndarray) -> None:
    parts = partition_indices(labels, 10, _settings("dirichlet", alpha=1e-3, min_samples_per_node=90), seed=0)

    assert min(len(part) for part in parts) >= 90


def test_dirichlet_huge_alpha_is_close_to_uniform(labels: np.ndarray) -> None:
    parts = partition_indices(labels, 4, _settings("dirichlet", alpha=1e3), seed=0)

    histograms = np.array(class_histograms(labels, parts, NUM_CLASSES))
    class_shares = histograms / histograms.sum(axis=1, keepdims=True)
    assert np.abs(class_shares - 1 / NUM_CLASSES).max() < 0.06


@pytest.mark.parametrize(("num_nodes", "labels_per_node"), [(5, 2), (7, 3), (10, 1), (3, 4)])
def test_shards_give_each_node_exactly_k_classes_and_use_every_class(
    labels: np.ndarray, num_nodes: int, labels_per_node: int
) -> None:
    settings = _settings("shards", labels_per_node=labels_per_node)

    parts = partition_indices(labels, num_nodes, settings, seed=4)

    histograms = np.array(class_histograms(labels, parts, NUM_CLASSES))
    assert all(np.count_nonzero(row) == labels_per_node for row in histograms)
    assert np.all(histograms.sum(axis=0) == 100)


def test_shards_with_too_few_slots_leave_undealt_classes_out(labels: np.ndarray) -> None:
    parts = partition_indices(labels, 4, _settings("shards", labels_per_node=2), seed=4)

    histograms = np.array(class_histograms(labels, parts, NUM_CLASSES))
    assert all(np.count_nonzero(row) == 2 for row in histograms)
    assert np.count_nonzero(histograms.sum(axis=0)) == 8
    assert len(np.unique(np.concatenate(parts))) == sum(len(part) for part in parts) == 800


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
def test_more_nodes_than_the_pool_can_feed_is_a_config_error(labels: np.ndarray, scheme: str) -> None:
    with pytest.raises(ConfigError) as raised:
        partition_indices(labels[:30], 8, _settings(scheme, min_samples_per_node=4), seed=0)

    assert raised.value.key == "federation.num_nodes"
    assert "8 nodes need at least 32 samples" in str(raised.value)
    assert "the federated pool has 30" in str(raised.value)


def test_more_nodes_than_samples_is_a_config_error(labels: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="federation.num_nodes"):
        partition_indices(labels[:3], 4, _settings("iid", min_samples_per_node=1), seed=0)


def test_shards_with_more_labels_per_node_than_classes_is_a_config_error(labels: np.ndarray) -> None:
    with pytest.raises(ConfigError) as raised:
        partition_indices(labels, 2, _settings("shards", labels_per_node=11), seed=0)

    assert raised.value.key == "partition.labels_per_node"


@pytest.mark.parametrize("alpha", [0.0, -1.0])
def test_non_positive_alpha_is_a_config_error(labels: np.ndarray, alpha: float) -> None:
    with pytest.raises(ConfigError) as raised:
        partition_indices(labels, 2, _settings("dirichlet", alpha=alpha), seed=0)

    assert raised.value.key == "partition.alpha"


def test_unknown_scheme_is_a_config_error(labels: np.ndarray) -> None:
    with pytest.raises(ConfigError) as raised:
        partition_indices(labels, 2, _settings("pathological"), seed=0)

    assert raised.value.key == "partition.scheme"


def test_histogram_table_has_a_row_per_node_and_a_column_per_class() -> None:
    labels = np.array([0, 0, 1, 2, 2, 2])
    parts = [np.array([0, 1, 2]), np.array([3, 4, 5])]

    histograms = class_histograms(labels, parts, 3)
    table = format_histograms(histograms, ["knife", "gun", "car"])

    assert histograms == [[2, 1, 0], [0, 0, 3]]
    lines = table.splitlines()
    assert lines[0].split() == ["node", "knife", "gun", "car", "total"]
    assert lines[1].split() == ["0", "2", "1", "0", "3"]
    assert lines[2].split() == ["1", "0", "0", "3", "3"]
