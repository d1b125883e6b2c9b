"""Synthetic holdings: seeded files on disk that the folder loader reads like a unit's."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fedtriage.errors import ConfigError
from fl_client.holdings import (
    HoldingsError,
    ensure_synthetic_holdings,
    load_folder_holdings,
    load_holdings,
    write_synthetic_holdings,
)
from fl_protocol.settings import HoldingsSettings, SyntheticSettings

CLASSES = ["disc", "square", "triangle", "cross"]
MARKER = ".fedtriage-synthetic.json"


def _file_bytes(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _settings(root: Path, images_per_class: int = 3, image_format: str = "mixed") -> HoldingsSettings:
    return HoldingsSettings(
        source="synthetic",
        path=str(root),
        classes=list(CLASSES),
        image_size=16,
        channels=3,
        test_fraction=0.2,
        val_fraction=0.2,
        synthetic=SyntheticSettings(images_per_class=images_per_class, image_format=image_format),
    )


def test_same_seed_writes_byte_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    written = [
        write_synthetic_holdings(tmp_path / name, CLASSES, 3, 16, "mixed", seed)
        for name, seed in (("first", 5), ("again", 5), ("other", 6))
    ]

    assert written == [12, 12, 12]
    first, again, other = (_file_bytes(tmp_path / name) for name in ("first", "again", "other"))
    assert first == again
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_mixed_format_alternates_png_and_jpeg_files(tmp_path: Path) -> None:
    write_synthetic_holdings(tmp_path, ["disc"], 4, 16, "mixed", seed=0)

    files = _file_bytes(tmp_path)
    assert sorted(files) == ["disc/disc_0.png", "disc/disc_1.jpg", "disc/disc_2.png", "disc/disc_3.jpg"]
    assert files["disc/disc_0.png"].startswith(b"\x89PNG")
    assert files["disc/disc_1.jpg"].startswith(b"\xff\xd8")


def test_generated_holdings_load_back_with_the_right_class_counts(tmp_path: Path) -> None:
    write_synthetic_holdings(tmp_path, CLASSES, 5, 16, "mixed", seed=1)

    holdings = load_folder_holdings(tmp_path, CLASSES, image_size=16, channels=3)

    assert holdings.report.class_counts == dict.fromkeys(CLASSES, 5)
    assert holdings.report.skipped == []
    assert tuple(holdings.images.shape) == (20, 3, 16, 16)


def test_more_than_four_classes_stay_learnable_by_a_small_cnn_even_in_grey(tmp_path: Path) -> None:
    classes = [f"kind{index}" for index in range(8)]
    write_synthetic_holdings(tmp_path, classes, 40, 12, "png", seed=2)
    holdings = load_folder_holdings(tmp_path, classes, image_size=12, channels=1)
    images, labels = holdings.as_dataset().tensors
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(labels)))
    train, test = order[:240], order[240:]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: threads only contend
    try:
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 8),
        )  # fmt: skip
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(25):
            for batch in train.split(60):
                loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            accuracy = (model(images[test]).argmax(dim=1) == labels[test]).float().mean().item()
    finally:
        torch.set_num_threads(threads)

    assert accuracy > 0.6  # chance is 0.125


def test_ensure_generates_once_and_then_reuses_the_set(tmp_path: Path) -> None:
    root = tmp_path / "synthetic"
    settings = _settings(root)

    assert ensure_synthetic_holdings(settings, seed=3) is True
    files = _file_bytes(root)
    modified = {path: path.stat().st_mtime_ns for path in root.rglob("*.*")}
    assert ensure_synthetic_holdings(settings, seed=3) is False

    assert _file_bytes(root) == files
    assert {path: path.stat().st_mtime_ns for path in root.rglob("*.*")} == modified
    assert json.loads((root / MARKER).read_text())["parameters"]["seed"] == 3


def test_generated_set_loads_through_load_holdings_without_reporting_the_marker(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "synthetic", images_per_class=2)
    ensure_synthetic_holdings(settings, seed=0)

    holdings = load_holdings(settings)

    assert holdings.classes == tuple(CLASSES)
    assert holdings.report.loaded == 8
    assert holdings.report.skipped == []


def test_changed_parameters_replace_only_generated_files(tmp_path: Path) -> None:
    root = tmp_path / "synthetic"
    ensure_synthetic_holdings(_settings(root, images_per_class=4), seed=0)
    (root / "disc" / "my_note.txt").write_text("added by hand")

    assert ensure_synthetic_holdings(_settings(root, images_per_class=2, image_format="png"), seed=0) is True

    assert sorted(path.name for path in (root / "disc").iterdir()) == ["disc_0.png", "disc_1.png", "my_note.txt"]
    assert sorted(path.name for path in (root / "cross").iterdir()) == ["cross_0.png", "cross_1.png"]


def test_a_damaged_generated_file_is_regenerated(tmp_path: Path) -> None:
    root = tmp_path / "synthetic"
    ensure_synthetic_holdings(_settings(root), seed=0)
    original = _file_bytes(root)
    (root / "square" / "square_1.jpg").write_bytes(b"truncated")

    assert ensure_synthetic_holdings(_settings(root), seed=0) is True
    assert _file_bytes(root) == original


def test_ensure_refuses_a_non_empty_folder_it_did_not_write(tmp_path: Path) -> None:
    root = tmp_path / "unit_holdings"
    (root / "evidence").mkdir(parents=True)
    (root / "evidence" / "item.png").write_bytes(b"not ours")

    with pytest.raises(HoldingsError) as raised:
        ensure_synthetic_holdings(_settings(root), seed=0)

    assert str(root) in str(raised.value)
    assert sorted(str(path.relative_to(root)) for path in root.rglob("*")) == ["evidence", "evidence/item.png"]


def test_ensure_writes_into_an_existing_empty_folder(tmp_path: Path) -> None:
    assert ensure_synthetic_holdings(_settings(tmp_path), seed=0) is True
    assert len(list(tmp_path.rglob("*.png"))) + len(list(tmp_path.rglob("*.jpg"))) == 12


def test_ensure_needs_at_least_one_image_per_class(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        ensure_synthetic_holdings(_settings(tmp_path / "synthetic", images_per_class=0), seed=0)

    assert raised.value.key == "holdings.synthetic.images_per_class"
    assert not (tmp_path / "synthetic").exists()


def test_loading_synthetic_holdings_that_were_never_generated_says_who_generates_them(tmp_path: Path) -> None:
    with pytest.raises(HoldingsError, match="ensure_synthetic_holdings"):
        load_holdings(_settings(tmp_path / "never_written"))


def test_folder_source_without_classes_discovers_them(tmp_path: Path) -> None:
    write_synthetic_holdings(tmp_path, ["b_class", "a_class"], 2, 8, "png", seed=0)
    settings = HoldingsSettings(
        source="folder", path=str(tmp_path), classes=None, image_size=8, channels=1, test_fraction=0.2,
        val_fraction=0.2, synthetic=SyntheticSettings(images_per_class=0, image_format="png"),
    )

    holdings = load_holdings(settings)

    assert holdings.classes == ("a_class", "b_class")
    assert holdings.class_histogram() == [2, 2]
