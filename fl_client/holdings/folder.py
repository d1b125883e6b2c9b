"""A unit's holdings as it keeps them: `<root>/<class name>/**/<image files>`.

A unit's folders hold whatever accumulated there: broken downloads, documents named
like images, huge scans, links into other places. The loader tries every file, keeps
what decodes, and records every file it did not use with the reason, so nothing is
hidden and nothing crashes a round. Problems a unit must fix before training (a
missing folder, a class without any usable image) raise `HoldingsError` at once.
"""

import stat
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fl_client.holdings.holdings import Holdings, HoldingsError, HoldingsReport, SkippedFile, describe_skipped
from fl_protocol.errors import ConfigError

_PIL_MODES = {1: "L", 3: "RGB"}
# PIL's EPS reader runs Ghostscript on the file; holdings may be hostile, so no file
# is ever handed to an external program.
_FORMATS_RUNNING_PROGRAMS = frozenset({"EPS"})


class _Skip(Exception):
    """Raised inside the loader for a file that is recorded as skipped."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def discover_classes(root: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of `root`: the class list of a folder.

    Sorted so that every node deriving the list from the same folder names gets the
    same label order.
    """
    root = Path(root)
    _check_root(root)
    names = sorted(entry.name for entry in _list_dir(root) if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise HoldingsError(
            f"holdings.path: {root} has no class sub-folders; expected <holdings.path>/<class name>/<image files>"
        )
    return names


def class_folder(root: Path, name: str) -> Path:
    """Where class `name` lives under `root`; refuses names that would leave `root`."""
    if not name or name.startswith(".") or any(char in name for char in ("/", "\\", "\x00")):
        raise HoldingsError(
            f"holdings.classes: {name!r} cannot be a class folder name (one path component, not hidden, not empty)"
        )
    return Path(root) / name


def load_folder_holdings(root: Path, classes: Sequence[str], image_size: int, channels: int) -> Holdings:
    """Every image under `<root>/<class>/`, fitted to image_size x image_size, labelled by class index.

    `classes` fixes the label order, so every node must pass the same list.
    """
    root = Path(root)
    _check_root(root)
    if image_size < 1:
        raise ConfigError("holdings.image_size", f"must be >= 1, got {image_size}")
    if channels not in _PIL_MODES:
        raise ConfigError("holdings.channels", f"must be 1 or 3, got {channels}")
    classes = tuple(classes)
    if not classes:
        raise HoldingsError(f"holdings.classes: no classes given for the holdings at {root}")
    if len(set(classes)) != len(classes):
        raise HoldingsError(f"holdings.classes: class names must be unique, got {list(classes)}")
    folders = [class_folder(root, name) for name in classes]
    for name, folder in zip(classes, folders):
        if not folder.is_dir():
            raise HoldingsError(
                f"class folder {folder} does not exist (class {name!r} of holdings.classes); "
                "create it or remove the class"
            )

    boundary = root.resolve()
    seen: set[Path] = set()
    skipped = _entries_outside_class_folders(root, classes)
    images: list[np.ndarray] = []
    labels: list[int] = []
    per_class: list[tuple[Path, int, list[SkippedFile]]] = []
    for label, folder in enumerate(folders):
        class_skipped: list[SkippedFile] = []
        loaded = 0
        for path in _candidate_files(folder, boundary, seen, class_skipped):
            try:
                images.append(_read_image(path, _PIL_MODES[channels], image_size))
            except _Skip as skip:
                class_skipped.append(SkippedFile(str(path), skip.reason))
                continue
            labels.append(label)
            loaded += 1
        skipped.extend(class_skipped)
        per_class.append((folder, loaded, class_skipped))

    if not labels:
        raise HoldingsError(
            f"holdings.path: {root} holds no readable image ({_describe_folder(skipped)}); "
            "expected <holdings.path>/<class name>/<image files>"
        )
    for folder, loaded, class_skipped in per_class:
        if loaded == 0:
            raise HoldingsError(
                f"class folder {folder} has no readable image ({_describe_folder(class_skipped)}); "
                "add images or remove the class from holdings.classes"
            )

    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    report = HoldingsReport(
        source=f"folder {root}",
        loaded=len(labels),
        skipped=skipped,
        class_counts={name: int(count) for name, count in zip(classes, counts)},
    )
    return Holdings(
        images=torch.from_numpy(np.stack(images)),
        labels=torch.tensor(labels, dtype=torch.int64),
        classes=classes,
        report=report,
    )


def _check_root(root: Path) -> None:
    if not root.exists():
        raise HoldingsError(f"holdings.path: {root} does not exist")
    if not root.is_dir():
        raise HoldingsError(f"holdings.path: {root} is not a directory")


def _list_dir(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError as err:
        raise HoldingsError(f"holdings.path: cannot list {folder}: {err.strerror or err}") from err


def _describe_folder(skipped: Sequence[SkippedFile]) -> str:
    if not skipped:
        return "it holds no files"
    return f"{len(skipped)} skipped: {describe_skipped(skipped)}"


def _entries_outside_class_folders(root: Path, classes: Sequence[str]) -> list[SkippedFile]:
    """Visible files and folders next to the class folders: not loaded, so reported.

    Hidden entries at the top (e.g. the synthetic generator's marker) are bookkeeping,
    not holdings, and are left out silently.
    """
    skipped = []
    for entry in _list_dir(root):
        if entry.name.startswith(".") or entry.name in classes:
            continue
        reason = "folder not in holdings.classes" if entry.is_dir() else "not in a class folder"
        skipped.append(SkippedFile(str(entry), reason))
    return skipped


def _candidate_files(path: Path, boundary: Path, seen: set[Path], skipped: list[SkippedFile]) -> Iterator[Path]:
    """Regular files under `path`, depth first in name order.

    Hidden entries, links that leave `boundary`, loops and special files are recorded
    in `skipped` instead. Links inside the holdings are followed once.
    """
    real = _admit(path, boundary, seen, skipped)
    if real is None:
        return
    if not real.is_dir():
        yield path
        return
    try:
        entries = sorted(path.iterdir(), key=lambda entry: entry.name)
    except OSError:
        skipped.append(SkippedFile(str(path), "folder cannot be read"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            reason = "hidden folder" if entry.is_dir() else "hidden file"
            skipped.append(SkippedFile(str(entry), reason))
            continue
        yield from _candidate_files(entry, boundary, seen, skipped)


def _admit(path: Path, boundary: Path, seen: set[Path], skipped: list[SkippedFile]) -> Path | None:
    """The real path of a folder or regular file that may be read, else None (recorded)."""
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        skipped.append(SkippedFile(str(path), "broken symlink"))
        return None
    except (OSError, RuntimeError):  # a symlink loop
        skipped.append(SkippedFile(str(path), "unresolvable symlink"))
        return None
    if not real.is_relative_to(boundary):
        skipped.append(SkippedFile(str(path), "symlink outside holdings"))
        return None
    if real in seen:
        skipped.append(SkippedFile(str(path), "already read through another link"))
        return None
    try:
        mode = real.stat().st_mode
    except OSError:
        skipped.append(SkippedFile(str(path), "cannot be read"))
        return None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        skipped.append(SkippedFile(str(path), "not a regular file"))
        return None
    seen.add(real)
    return real


def _read_image(path: Path, mode: str, image_size: int) -> np.ndarray:
    """One file as uint8 [C, image_size, image_size], or `_Skip` with the reason."""
    try:
        if path.stat().st_size == 0:
            raise _Skip("empty file")
        with warnings.catch_warnings():
            # Only inside this block: PIL's global settings stay as the process has them.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=_safe_formats()) as opened:
                opened.draft(mode, (image_size, image_size))  # JPEG: decode at a reduced scale
                opened.load()
                upright = ImageOps.exif_transpose(opened)
                fitted = ImageOps.fit(upright.convert(mode), (image_size, image_size))
    except _Skip:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise _Skip("image too large (decompression bomb guard)") from err
    except UnidentifiedImageError as err:
        raise _Skip("not an image") from err
    except (PermissionError, FileNotFoundError) as err:
        raise _Skip("cannot be read") from err
    except Exception as err:  # noqa: BLE001 - any decoder failure means this one file is unusable
        raise _Skip("truncated or corrupt image") from err
    pixels = np.asarray(fitted, dtype=np.uint8)
    if pixels.ndim == 2:
        return pixels[np.newaxis].copy()
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _safe_formats() -> list[str]:
    Image.init()
    return [name for name in Image.OPEN if name not in _FORMATS_RUNNING_PROGRAMS]
