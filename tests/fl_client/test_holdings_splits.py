"""Splits, the digits loader and simulated nodes: stratified, seeded, never overlapping."""

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from fedtriage.errors import ConfigError
from fl_client.holdings import (
    Holdings,
    HoldingsReport,
    central_test_holdings,
    load_digits_holdings,
    simulated_node_holdings,
    split_holdout,
    train_val_split,
    write_synthetic_holdings,
)
from fl_protocol.run_config import load_settings
from fl_protocol.settings import HoldingsSettings, RunSettings, SyntheticSettings
from media.walk import SkippedFile

DIGIT_NAMES = [str(digit) for digit in range(10)]


def _digits_settings(**overrides: object) -> HoldingsSettings:
    values: dict[str, object] = {
        "source": "digits", "classes": DIGIT_NAMES, "image_size": 8, "channels": 1,
        "test_fraction": 0.2, "val_fraction": 0.2,
        "synthetic": SyntheticSettings(images_per_class=0, image_format="png"),
    }
    values.update(overrides)
    return HoldingsSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def digits() -> Holdings:
    return load_digits_holdings(_digits_settings())


def _holdings(labels: list[int], classes: tuple[str, ...] = ("a", "b", "c")) -> Holdings:
    """Tiny holdings whose image i is filled with the value i (so examples are traceable)."""
    count = len(labels)
    images = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1).expand(count, 1, 2, 2).contiguous()
    report = HoldingsReport(
        source="test", loaded=count, skipped=[SkippedFile("/x/bad.png", "empty file")], class_counts={}
    )
    return Holdings(images=images, labels=torch.tensor(labels, dtype=torch.int64), classes=classes, report=report)


def _ids(holdings: Holdings) -> set[int]:
    return {int(value) for value in holdings.images[:, 0, 0, 0]}


def test_digits_loader_gives_1797_uint8_images_in_10_classes(digits: Holdings) -> None:
    assert len(digits) == 1797
    assert digits.classes == tuple(DIGIT_NAMES)
    assert tuple(digits.images.shape) == (1797, 1, 8, 8)
    assert digits.images.dtype == torch.uint8 and digits.labels.dtype == torch.int64
    assert int(digits.images.min()) == 0 and int(digits.images.max()) == 255
    assert sum(digits.class_histogram()) == 1797 and min(digits.class_histogram()) > 170
    assert digits.report.skipped == []


def test_digits_resized_and_replicated_to_the_configured_shape(digits: Holdings) -> None:
    resized = load_digits_holdings(_digits_settings(image_size=16, channels=3))

    assert tuple(resized.images.shape) == (1797, 3, 16, 16)
    assert resized.images.dtype == torch.uint8
    assert torch.equal(resized.images[:, 0], resized.images[:, 2])
    assert torch.equal(resized.labels, digits.labels)


def test_digits_need_ten_class_names() -> None:
    with pytest.raises(ConfigError) as raised:
        load_digits_holdings(_digits_settings(classes=["zero", "one"]))

    assert raised.value.key == "holdings.classes"


def test_dataset_scales_images_to_unit_range(digits: Holdings) -> None:
    images, labels = digits.subset(range(10)).as_dataset().tensors

    assert images.dtype == torch.float32 and float(images.max()) == 1.0 and float(images.min()) == 0.0
    assert torch.equal(labels, digits.labels[:10])


def test_subset_recounts_its_report_and_keeps_the_skipped_files() -> None:
    holdings = _holdings([0, 0, 1, 2, 2, 2])

    part = holdings.subset(np.array([0, 3, 4]))

    assert len(part) == 3
    assert _ids(part) == {0, 3, 4}
    assert part.report.loaded == 3
    assert part.report.class_counts == {"a": 1, "b": 0, "c": 2}
    assert part.report.skipped == holdings.report.skipped
    assert part.class_histogram() == [1, 0, 2]


def test_holdout_is_stratified_disjoint_and_complete(digits: Holdings) -> None:
    pool, test = split_holdout(digits, test_fraction=0.2, seed=0)

    assert len(pool) + len(test) == 1797
    assert len(test) == round(0.2 * 1797)
    for class_size, test_count in zip(digits.class_histogram(), test.class_histogram()):
        assert abs(test_count - 0.2 * class_size) <= 1


def test_holdout_is_deterministic_for_a_seed_and_differs_for_another() -> None:
    holdings = _holdings([0, 1, 2] * 20)

    _, first = split_holdout(holdings, 0.25, seed=1)
    _, again = split_holdout(holdings, 0.25, seed=1)
    pool, other = split_holdout(holdings, 0.25, seed=2)

    assert _ids(first) == _ids(again)
    assert _ids(first) != _ids(other)
    assert _ids(pool).isdisjoint(_ids(other)) and len(_ids(pool) | _ids(other)) == 60


def test_zero_test_fraction_holds_nothing_out(digits: Holdings) -> None:
    pool, test = split_holdout(digits, test_fraction=0.0, seed=0)

    assert len(test) == 0 and len(pool) == 1797
    assert tuple(test.images.shape[1:]) == (1, 8, 8)


@pytest.mark.parametrize("fraction", [-0.1, 1.0])
def test_fraction_outside_zero_to_one_names_the_setting(digits: Holdings, fraction: float) -> None:
    with pytest.raises(ConfigError, match="holdings.test_fraction"):
        split_holdout(digits, fraction, seed=0)
    with pytest.raises(ConfigError, match="holdings.val_fraction"):
        train_val_split(digits, fraction, seed=0)


@pytest.mark.parametrize(("count", "fraction"), [(2, 0.01), (2, 0.99), (3, 0.5), (7, 0.2)])
def test_small_node_keeps_at_least_one_example_on_each_side(count: int, fraction: float) -> None:
    holdings = _holdings([0] * count)

    train, val = train_val_split(holdings, fraction, seed=0)

    assert len(train) >= 1 and len(val) >= 1 and len(train) + len(val) == count


def test_train_val_split_is_deterministic_and_stratified() -> None:
    holdings = _holdings([0] * 30 + [1] * 10)

    train, val = train_val_split(holdings, 0.2, seed=9)
    _, again = train_val_split(holdings, 0.2, seed=9)

    assert _ids(val) == _ids(again)
    assert val.class_histogram() == [6, 2, 0]
    assert _ids(train).isdisjoint(_ids(val))


def test_zero_val_fraction_and_single_example_keep_everything_for_training() -> None:
    assert len(train_val_split(_holdings([0, 1, 2]), 0.0, seed=0)[1]) == 0
    assert len(train_val_split(_holdings([1]), 0.5, seed=0)[0]) == 1


def _run_settings(root: Path, scheme: str) -> RunSettings:
    return load_settings(
        [
            "seed=11", "holdings=folder", f"holdings.path={root}", "holdings.image_size=8", "holdings.channels=1",
            "holdings.val_fraction=0.25", f"partition={scheme}", "partition.alpha=0.3",
        ]
    )


def _fingerprints(holdings: Holdings) -> list[str]:
    return [hashlib.sha256(image.numpy().tobytes()).hexdigest() for image in holdings.images]


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "shards"])
def test_central_test_set_never_overlaps_any_node_and_nodes_cover_the_pool(tmp_path: Path, scheme: str) -> None:
    write_synthetic_holdings(tmp_path, ["disc", "square", "triangle", "cross"], 30, 8, "png", seed=0)
    (tmp_path / "disc" / "broken.png").write_bytes(b"")
    settings = _run_settings(tmp_path, scheme)

    nodes = [simulated_node_holdings(settings, node, 3) for node in range(3)]
    test = central_test_holdings(settings)

    test_images = set(_fingerprints(test))
    node_images = [_fingerprints(node.train) + _fingerprints(node.val) for node in nodes]
    all_node_images = [image for images in node_images for image in images]
    assert len(test_images) == len(test) == 24
    assert len(set(all_node_images)) == len(all_node_images)
    assert test_images.isdisjoint(all_node_images)
    assert len(all_node_images) == 120 - 24  # even shards: 3 nodes x 2 labels cover all 4 classes
    for node in nodes:
        assert node.report.loaded == len(node.train) + len(node.val)
        assert sum(node.report.class_counts.values()) == node.report.loaded
        assert [skipped.reason for skipped in node.report.skipped] == ["empty file"]
        assert len(node.val) >= 1


def test_node_holdings_are_reproducible_and_the_pool_is_cached_by_content(tmp_path: Path) -> None:
    write_synthetic_holdings(tmp_path, ["disc", "square"], 20, 8, "png", seed=0)
    settings = _run_settings(tmp_path, "iid")

    first = simulated_node_holdings(settings, 1, 2)
    again = simulated_node_holdings(copy.deepcopy(settings), 1, 2)

    assert torch.equal(first.train.images, again.train.images) and torch.equal(first.val.labels, again.val.labels)
    assert central_test_holdings(copy.deepcopy(settings)) is central_test_holdings(settings)


def test_node_outside_the_partitions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="partition 2 does not exist"):
        simulated_node_holdings(_run_settings(tmp_path, "iid"), 2, 2)


def test_default_configuration_gives_every_node_digits(tmp_path: Path) -> None:
    settings = load_settings(["partition=dirichlet"], base=tmp_path)

    nodes = [simulated_node_holdings(settings, node, 4) for node in range(4)]

    assert sum(node.report.loaded for node in nodes) + len(central_test_holdings(settings)) == 1797
    assert all(node.report.loaded >= settings.partition.min_samples_per_node for node in nodes)
    assert nodes[0].report.source == "scikit-learn digits"
