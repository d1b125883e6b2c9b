"""A unit's holdings as it keeps them: `<root>/<class name>/**/<image files>`.

A unit's folders hold whatever accumulated there: broken downloads, documents named
like images, huge scans, links into other places. The loader tries every file, keeps
what decodes, and records every file it did not use with the reason, so nothing is
hidden and nothing crashes a round. Problems a unit must fix before training (a
missing folder, a class without any usable image) raise `HoldingsError` at once.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fl_client.holdings.holdings import (
    Holdings,
    HoldingsError,
    check_image_shape,
    checked_class_names,
    describe_skipped_or,
)
from media.decode import UnreadableImage, read_image
from media.walk import SkippedFile, regular_files


def discover_classes(root: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of `root`: the class list of a folder.

    Sorted so that every node deriving the list from the same folder names gets the
    same label order.
    """
    root = Path(root)
    _check_root(root, "holdings.path")
    entries = _list_dir(root, "holdings.path")
    names = sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))
    if not names:
        raise HoldingsError(
            "holdings.path", f"{root} has no class sub-folders; expected <holdings.path>/<class name>/<image files>"
        )
    return names


def class_folder(root: Path, name: str) -> Path:
    """Where class `name` lives under `root`; refuses names that would leave `root`."""
    if not name or name.startswith(".") or any(char in name for char in ("/", "\\", "\x00")):
        raise HoldingsError(
            "holdings.classes", f"{name!r} cannot be a class folder name (one path component, not hidden, not empty)"
        )
    return Path(root) / name


def load_folder_holdings(
    root: Path, classes: Sequence[str], image_size: int, channels: int, setting: str = "holdings.path",
    folders_of_class: Sequence[Sequence[str]] | None = None,
) -> Holdings:
    """Every image under `<root>/<class>/`, fitted to image_size x image_size, labelled by class index.

    `classes` fixes the label order, so every node must pass the same list. A unit that
    names its categories otherwise gives, per class, the folders that feed it
    (`folders_of_class`, from its policy's `holdings.categories`). Errors about the folder
    name `setting`, the setting that points at it.
    """
    root = Path(root)
    _check_root(root, setting)
    check_image_shape(image_size, channels)
    classes = checked_class_names(classes, f"the holdings at {root}")
    local = [list(names) for names in folders_of_class] if folders_of_class is not None else [[n] for n in classes]
    if len(local) != len(classes):
        raise HoldingsError("holdings.categories", f"{len(local)} folder lists for {len(classes)} classes")
    folders = [[class_folder(root, name) for name in names] for names in local]
    for name, class_folders in zip(classes, folders):
        for folder in class_folders:
            if not folder.is_dir():
                raise HoldingsError(
                    setting,
                    f"class folder {folder} does not exist (class {name!r} of holdings.classes); "
                    "create it or remove the class"
                )

    boundary = root.resolve()
    seen: set[Path] = set()
    skipped = _entries_outside_class_folders(root, [name for names in local for name in names], setting)
    images: list[np.ndarray] = []
    labels: list[int] = []
    per_class: list[tuple[Path, int, list[SkippedFile]]] = []
    for label, class_folders in enumerate(folders):
        class_skipped: list[SkippedFile] = []
        loaded = 0
        for folder in class_folders:
            for path in regular_files(folder, boundary, seen, class_skipped, skip_hidden=True):
                try:
                    images.append(read_image(path, channels, image_size))
                except UnreadableImage as unreadable:
                    class_skipped.append(SkippedFile(str(path), unreadable.reason))
                    continue
                labels.append(label)
                loaded += 1
        skipped.extend(class_skipped)
        per_class.append((class_folders[0], loaded, class_skipped))

    if not labels:
        raise HoldingsError(
            setting, f"{root} holds no readable image ({describe_skipped_or(skipped, 'it holds no files')}); "
            f"expected <{setting}>/<class name>/<image files>"
        )
    for folder, loaded, class_skipped in per_class:
        if loaded == 0:
            why = describe_skipped_or(class_skipped, "it holds no files")
            raise HoldingsError(
                setting,
                f"class folder {folder} has no readable image ({why}); "
                "add images or remove the class from holdings.classes"
            )

    return Holdings.from_decoded(images, labels, classes, f"folder {root}", skipped)


def _check_root(root: Path, setting: str) -> None:
    if not root.exists():
        raise HoldingsError(setting, f"{root} does not exist")
    if not root.is_dir():
        raise HoldingsError(setting, f"{root} is not a directory")


def _list_dir(folder: Path, setting: str) -> list[Path]:
    try:
        return sorted(folder.iterdir(), key=lambda entry: entry.name)
    except OSError as err:
        raise HoldingsError(setting, f"cannot list {folder}: {err.strerror or err}") from err


def _entries_outside_class_folders(root: Path, classes: Sequence[str], setting: str) -> list[SkippedFile]:
    """Visible files and folders next to the class folders: not loaded, so reported.

    Hidden entries at the top (e.g. the synthetic generator's marker) are bookkeeping,
    not holdings, and are left out silently.
    """
    skipped = []
    for entry in _list_dir(root, setting):
        if entry.name.startswith(".") or entry.name in classes:
            continue
        reason = "folder not in holdings.classes" if entry.is_dir() else "not in a class folder"
        skipped.append(SkippedFile(str(entry), reason))
    return skipped
