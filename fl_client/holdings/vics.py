"""A unit's categorized VICS 2.0 case as training holdings, labelled by its `Category`.

Reading the case and resolving its untrusted paths is `media.vics`; this module labels
what it reads. Labels come from the examiners' `Category`, never from
`IsPrecategorized`: a tool's pre-categorization is a guess, and training on guesses
would teach the federation the tool's mistakes.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fedtriage.errors import ConfigError
from fl_client.holdings.holdings import (
    Holdings,
    HoldingsError,
    check_image_shape,
    checked_class_names,
    describe_skipped_or,
)
from media.decode import UnreadableImage, read_image
from media.vics import NO_PATH, VicsError, VicsMedia, VicsProblem, read_vics_media, resolve_media_path
from media.walk import SkippedFile

CATEGORY_NOT_MAPPED = "category not mapped"


def load_vics_holdings(
    case_file: Path,
    root: Path,
    classes: Sequence[str],
    category_of_class: Sequence[int | Sequence[int]],
    image_size: int,
    channels: int,
) -> Holdings:
    """A unit's categorized VICS case as training holdings, labelled by `Category`.

    Class i takes the entries whose `Category` is `category_of_class[i]` (or one of them, where a
    unit's policy lets several of its categories feed one class); the paths are
    read under `root`. `IsPrecategorized` is ignored: a tool's pre-categorization is a
    guess, and training on guesses would teach the federation the tool's mistakes.
    Every entry not used is reported with its reason.
    """
    case_file = Path(case_file)
    root = Path(root)
    check_image_shape(image_size, channels)
    classes, label_of_category = _labels_by_category(case_file, classes, category_of_class)
    if not root.is_dir():
        raise HoldingsError("holdings.vics_root", f"{root} is not an existing directory (the root of case {case_file})")
    try:
        items = read_vics_media(case_file)
    except VicsError as err:
        raise HoldingsError("holdings.path", f"{err}") from err

    files_read: set[Path] = set()
    skipped: list[SkippedFile] = []
    images: list[np.ndarray] = []
    labels: list[int] = []
    for index, item in enumerate(items):
        where = _entry_name(case_file, index, item)
        if isinstance(item, VicsProblem):
            skipped.append(SkippedFile(where, item.reason))
            continue
        label = label_of_category.get(item.category) if item.category is not None else None
        if label is None:
            skipped.append(SkippedFile(where, CATEGORY_NOT_MAPPED))
            continue
        if item.relative_path is None:
            skipped.append(SkippedFile(where, NO_PATH))
            continue
        resolved = resolve_media_path(root, item.relative_path)
        if isinstance(resolved, str):
            skipped.append(SkippedFile(where, resolved))
            continue
        real = resolved.resolve()
        if real in files_read:
            skipped.append(SkippedFile(where, "file listed by another entry"))
            continue
        files_read.add(real)
        try:
            images.append(read_image(resolved, channels, image_size))
        except UnreadableImage as unreadable:
            skipped.append(SkippedFile(where, unreadable.reason))
            continue
        labels.append(label)

    if not labels:
        why = describe_skipped_or(skipped, "it lists no media")
        raise HoldingsError("holdings.path", f"case {case_file} gives no usable image under {root} ({why})")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    for name, code, count in zip(classes, category_of_class, counts):
        if count == 0:
            raise HoldingsError(
                "holdings.vics_categories",
                f"class {name!r} (Category {code}) has no usable image in case {case_file}; "
                "check holdings.vics_categories or remove the class"
            )
    return Holdings.from_decoded(images, labels, classes, f"vics {case_file}", skipped)


def _labels_by_category(
    case_file: Path, classes: Sequence[str], category_of_class: Sequence[int | Sequence[int]]
) -> tuple[tuple[str, ...], dict[int, int]]:
    """The class names and the label of each mapped category; errors name the setting."""
    names = checked_class_names(classes, f"the case {case_file}")
    codes = list(category_of_class)
    if len(codes) != len(names):
        raise ConfigError(
            "holdings.vics_categories",
            f"needs one category code per class: {len(codes)} codes for {len(names)} classes",
        )
    label_of = {code: label for label, class_codes in enumerate(codes)
                for code in ([class_codes] if isinstance(class_codes, int) else class_codes)}
    if len(label_of) != sum(1 if isinstance(c, int) else len(c) for c in codes):
        raise ConfigError("holdings.vics_categories", f"category codes must be distinct, got {codes}")
    return names, label_of


def _entry_name(case_file: Path, index: int, item: VicsMedia | VicsProblem) -> str:
    """How a report names an entry: its relative path, else its position in the case."""
    if isinstance(item, VicsMedia) and item.relative_path is not None:
        return item.relative_path
    return f"{case_file} entry {index}"


