"""The folder loader on a unit's messy holdings: keep what decodes, report the rest."""

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fedtriage.errors import ConfigError
from fl_client.holdings import HoldingsError, HoldingsReport, discover_classes, load_folder_holdings
from media.walk import SkippedFile, regular_files

BOMB_REASON = "image too large (decompression bomb guard)"


def _image_bytes(width: int, height: int, image_format: str, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _one_bit_png(width: int, height: int, *, with_pixels: bool) -> bytes:
    """A 1-bit greyscale PNG: huge in pixels, tiny on disk (all rows are zero)."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)
    data = zlib.compress(row * height, 9) if with_pixels else zlib.compress(row)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def _reasons(report: HoldingsReport) -> dict[str, str]:
    return {Path(skipped.path).name: skipped.reason for skipped in report.skipped}


@pytest.fixture
def messy_root(tmp_path: Path) -> Path:
    """Two classes of good PNG/JPEG images, one of them littered with every kind of bad file."""
    root = tmp_path / "holdings"
    _write(root / "cat" / "a.png", _image_bytes(20, 30, "PNG", 1))
    _write(root / "cat" / "nested" / "deeper" / "b.jpg", _image_bytes(40, 16, "JPEG", 2))
    _write(root / "cat" / "photo_without_extension", _image_bytes(12, 12, "PNG", 3))
    _write(root / "cat" / "truncated.png", _image_bytes(32, 32, "PNG", 4)[:600])
    _write(root / "cat" / "notes.jpg", b"minutes of the meeting, not a picture\n")
    _write(root / "cat" / "empty.png", b"")
    _write(root / "cat" / ".hidden.png", _image_bytes(8, 8, "PNG", 5))
    _write(root / "cat" / "bomb.png", _one_bit_png(20000, 20000, with_pixels=False))
    _write(root / "cat" / "large.png", _one_bit_png(10000, 10000, with_pixels=True))
    outside = _write(tmp_path / "elsewhere" / "secret.png", _image_bytes(8, 8, "PNG", 6))
    (root / "cat" / "link_out.png").symlink_to(outside)
    _write(root / "dog" / "c.png", _image_bytes(16, 16, "PNG", 7))
    _write(root / "dog" / "d.jpeg", _image_bytes(16, 16, "JPEG", 8))
    return root


def test_good_images_load_and_every_bad_file_is_reported_with_its_reason(messy_root: Path) -> None:
    holdings = load_folder_holdings(messy_root, ["cat", "dog"], image_size=8, channels=3)

    assert len(holdings) == 5
    assert holdings.images.dtype == torch.uint8
    assert tuple(holdings.images.shape) == (5, 3, 8, 8)
    assert holdings.labels.tolist() == [0, 0, 0, 1, 1]
    assert holdings.report.class_counts == {"cat": 3, "dog": 2}
    assert _reasons(holdings.report) == {
        "bomb.png": BOMB_REASON,
        "empty.png": "empty file",
        ".hidden.png": "hidden file",
        "large.png": BOMB_REASON,
        "link_out.png": "symlink leads outside the root (not followed)",
        "notes.jpg": "not an image",
        "truncated.png": "truncated or corrupt image",
    }
    assert holdings.report.loaded == 5


def test_report_summary_and_flat_dict_count_skips_by_reason(messy_root: Path) -> None:
    report = load_folder_holdings(messy_root, ["cat", "dog"], image_size=8, channels=1).report

    assert report.summary() == (
        f"folder {messy_root}: 5 images loaded, 7 skipped (2 {BOMB_REASON}, 1 empty file, 1 hidden file, "
        "1 not an image, 1 symlink leads outside the root (not followed), 1 truncated or corrupt image)"
    )
    flat = report.to_flat_dict()
    assert not any(str(messy_root) in str(value) for value in flat.values())  # no local paths leave
    assert flat["loaded"] == 5
    assert flat["skipped"] == 7
    assert flat[f"skipped.{BOMB_REASON}"] == 2
    assert flat["class.cat"] == 3 and flat["class.dog"] == 2
    assert all(isinstance(value, (int, str)) for value in flat.values())


def test_decompression_bomb_guard_changes_no_global_pil_or_warning_setting(messy_root: Path) -> None:
    pixel_limit = Image.MAX_IMAGE_PIXELS
    filters = list(warnings.filters)

    load_folder_holdings(messy_root, ["cat", "dog"], image_size=8, channels=1)

    assert Image.MAX_IMAGE_PIXELS == pixel_limit
    assert warnings.filters == filters


def test_images_are_centre_cropped_to_a_square_and_converted_to_the_channels(tmp_path: Path) -> None:
    # A wide image: red margins left and right, blue square in the middle.
    pixels = np.zeros((20, 60, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:40] = (0, 0, 255)
    pixels[:, 40:] = (255, 0, 0)
    _write(tmp_path / "wide" / "banner.png", _png_bytes(pixels))
    _write(tmp_path / "other" / "x.png", _image_bytes(10, 10, "PNG"))

    colour = load_folder_holdings(tmp_path, ["wide", "other"], image_size=10, channels=3)
    grey = load_folder_holdings(tmp_path, ["wide", "other"], image_size=10, channels=1)

    banner = colour.images[0]
    assert tuple(banner.shape) == (3, 10, 10)
    assert banner[2].float().mean() > 240 and banner[0].float().mean() < 15  # only the blue centre is kept
    assert tuple(grey.images.shape) == (2, 1, 10, 10)


def _png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_labels_follow_the_given_class_order_not_the_folder_order(tmp_path: Path) -> None:
    _write(tmp_path / "apple" / "1.png", _image_bytes(8, 8, "PNG", 1))
    _write(tmp_path / "zebra" / "1.png", _image_bytes(8, 8, "PNG", 2))
    _write(tmp_path / "zebra" / "2.png", _image_bytes(8, 8, "PNG", 3))

    holdings = load_folder_holdings(tmp_path, ["zebra", "apple"], image_size=8, channels=1)

    assert holdings.classes == ("zebra", "apple")
    assert holdings.labels.tolist() == [0, 0, 1]
    assert holdings.class_histogram() == [2, 1]


def test_loading_twice_gives_identical_tensors(messy_root: Path) -> None:
    first = load_folder_holdings(messy_root, ["cat", "dog"], image_size=8, channels=3)
    second = load_folder_holdings(messy_root, ["cat", "dog"], image_size=8, channels=3)

    assert torch.equal(first.images, second.images)
    assert first.report == second.report


def test_symlink_inside_holdings_is_followed_and_a_loop_is_reported(tmp_path: Path) -> None:
    _write(tmp_path / ".store" / "kept.png", _image_bytes(8, 8, "PNG", 1))
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "kept_link.png").symlink_to(tmp_path / ".store" / "kept.png")
    (tmp_path / "cat" / "loop").symlink_to(tmp_path / "cat", target_is_directory=True)
    _write(tmp_path / "dog" / "1.png", _image_bytes(8, 8, "PNG", 2))

    holdings = load_folder_holdings(tmp_path, ["cat", "dog"], image_size=8, channels=1)

    assert holdings.report.class_counts == {"cat": 1, "dog": 1}
    assert _reasons(holdings.report) == {"loop": "already read through another link"}


def test_files_and_folders_outside_the_class_folders_are_reported(tmp_path: Path) -> None:
    _write(tmp_path / "cat" / "1.png", _image_bytes(8, 8, "PNG", 1))
    _write(tmp_path / "dog" / "1.png", _image_bytes(8, 8, "PNG", 2))
    _write(tmp_path / "unsorted" / "1.png", _image_bytes(8, 8, "PNG", 3))
    _write(tmp_path / "loose.png", _image_bytes(8, 8, "PNG", 4))
    _write(tmp_path / ".bookkeeping.json", b"{}")

    holdings = load_folder_holdings(tmp_path, ["cat", "dog"], image_size=8, channels=1)

    assert _reasons(holdings.report) == {
        "loose.png": "not in a class folder",
        "unsorted": "folder not in holdings.classes",
    }


def test_discover_classes_lists_visible_subfolders_sorted(tmp_path: Path) -> None:
    for name in ("weapons", "documents", ".cache", "animals"):
        (tmp_path / name).mkdir()
    _write(tmp_path / "readme.txt", b"not a class")

    assert discover_classes(tmp_path) == ["animals", "documents", "weapons"]


@pytest.mark.parametrize("make_root", ["missing", "file"])
def test_unusable_root_names_the_path_and_the_setting(tmp_path: Path, make_root: str) -> None:
    root = tmp_path / "holdings"
    if make_root == "file":
        root.write_bytes(b"x")

    for attempt in (lambda: discover_classes(root), lambda: load_folder_holdings(root, ["a", "b"], 8, 1)):
        with pytest.raises(HoldingsError) as raised:
            attempt()
        assert str(root) in str(raised.value) and "holdings.path" in str(raised.value)


def test_root_without_class_folders_cannot_be_discovered(tmp_path: Path) -> None:
    _write(tmp_path / "loose.png", _image_bytes(8, 8, "PNG"))

    with pytest.raises(HoldingsError, match="no class sub-folders"):
        discover_classes(tmp_path)


def test_missing_class_folder_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "cat" / "1.png", _image_bytes(8, 8, "PNG"))

    with pytest.raises(HoldingsError) as raised:
        load_folder_holdings(tmp_path, ["cat", "dog"], image_size=8, channels=1)

    assert str(tmp_path / "dog") in str(raised.value)


def test_class_folder_without_a_readable_image_names_folder_count_and_reasons(tmp_path: Path) -> None:
    _write(tmp_path / "cat" / "1.png", _image_bytes(8, 8, "PNG"))
    _write(tmp_path / "dog" / "a.jpg", b"text")
    _write(tmp_path / "dog" / "b.png", b"")
    _write(tmp_path / "dog" / "c.png", b"")

    with pytest.raises(HoldingsError) as raised:
        load_folder_holdings(tmp_path, ["cat", "dog"], image_size=8, channels=1)

    message = str(raised.value)
    assert str(tmp_path / "dog") in message
    assert "3 skipped: 2 empty file, 1 not an image" in message


def test_root_without_any_image_names_the_path(tmp_path: Path) -> None:
    _write(tmp_path / "cat" / "a.txt", b"text")
    (tmp_path / "dog").mkdir()

    with pytest.raises(HoldingsError) as raised:
        load_folder_holdings(tmp_path, ["cat", "dog"], image_size=8, channels=1)

    assert f"{tmp_path} holds no readable image" in str(raised.value)


@pytest.mark.parametrize("name", ["..", "../escape", "a/b", ".hidden", ""])
def test_class_names_that_would_leave_the_root_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(HoldingsError, match="holdings.classes"):
        load_folder_holdings(tmp_path, ["ok", name], image_size=8, channels=1)


def test_unsupported_channels_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_folder_holdings(tmp_path, ["a", "b"], image_size=8, channels=4)

    assert raised.value.key == "holdings.channels"


def test_skipped_file_is_an_immutable_value() -> None:
    skipped = SkippedFile("/x/a.png", "empty file")

    assert skipped == SkippedFile("/x/a.png", "empty file")
    with pytest.raises(AttributeError):
        skipped.reason = "other"  # type: ignore[misc]


def test_the_walk_remembers_folders_and_links_not_every_file(tmp_path: Path) -> None:
    """Memory flat in the number of files: a seized device may hold millions."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        for index in range(50):
            (tmp_path / folder / f"{index}.bin").write_bytes(b"x")
    (tmp_path / "b" / "link_to_a0.bin").symlink_to(tmp_path / "a" / "0.bin")  # walked after a/0.bin
    (tmp_path / "z_link_to_a").symlink_to(tmp_path / "a", target_is_directory=True)
    seen: set[Path] = set()
    skipped: list[SkippedFile] = []

    files = list(regular_files(tmp_path, tmp_path.resolve(), seen, skipped, skip_hidden=True))

    assert len(files) == 101  # 100 files, and the file link under its own name
    assert len(seen) == 4  # the root, two folders, one file-link target
    assert skipped == [SkippedFile(str(tmp_path / "z_link_to_a"), "already read through another link")]
