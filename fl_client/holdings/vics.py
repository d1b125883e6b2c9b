"""VICS 2.0 (Project VIC) documents: a unit's categorized case, or a set of known hashes.

Forensic tools export cases and hash sets as OData-style JSON; fields are optional in
practice and their spelling varies between tools (uppercase hashes, Windows paths,
booleans as strings). The reader turns each media entry into a `VicsMedia` or, when a
field cannot be used, a `VicsProblem`: one bad entry never costs the rest of a
document. A case's paths are untrusted, so `resolve_media_path` refuses any that would
read outside the case's root. `load_vics_holdings` makes a categorized case a unit's
training holdings, labelled by the examiners' `Category`, never by `IsPrecategorized`.
"""

import json
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from fl_client.holdings.holdings import (
    Holdings,
    HoldingsError,
    SkippedFile,
    check_image_shape,
    checked_class_names,
    describe_skipped_or,
)
from fl_client.holdings.image_decoding import UnreadableImage, read_image
from fl_protocol.errors import ConfigError

_MD5 = re.compile(r"[0-9a-fA-F]{32}")
_SHA1 = re.compile(r"[0-9a-fA-F]{40}")
_DRIVE = re.compile(r"[A-Za-z]:")

LEAVES_ROOT = "path leaves the root"
FILE_MISSING = "file missing"
NO_PATH = "no RelativeFilePath"
CATEGORY_NOT_MAPPED = "category not mapped"


class VicsError(ValueError):
    """A VICS document that cannot be read at all; the message names the file."""


@dataclass(frozen=True)
class VicsMedia:
    """One media entry, normalised: lowercase hex hashes, POSIX relative path."""

    media_id: int | None
    category: int | None
    md5: str | None
    sha1: str | None
    size: int | None
    relative_path: str | None
    is_precategorized: bool | None


@dataclass(frozen=True)
class VicsProblem:
    """An entry that cannot be used: its position among the document's media, and why.

    `reason` is a short phrase without values (no hashes, no paths), so that it can be
    counted in a report that leaves the unit.
    """

    index: int
    reason: str


class _EntryProblem(ValueError):
    """One field of one entry cannot be used."""


def read_vics_media(path: Path) -> Iterator[VicsMedia | VicsProblem]:
    """Every media entry of the VICS document at `path`, in document order.

    One item per entry, so the n-th item describes entry n (across all cases of a
    case document). Accepted shapes: `{"value": [case, ...]}` with each case's
    `Media`, `{"value": [media, ...]}` (a hash set), or a bare list of either. The
    `@odata.context` (and its profile) is informational and not checked. A missing
    file, a file that is not JSON, or one of no recognisable shape raises `VicsError`
    here, before the first item.
    """
    path = Path(path)
    document = _load_json(path)
    return _parse_values(_top_level_values(document, path))


def _load_json(path: Path) -> Any:
    try:
        with path.open("rb") as stream:
            return json.load(stream)
    except FileNotFoundError as err:
        raise VicsError(f"{path}: VICS document does not exist") from err
    except IsADirectoryError as err:
        raise VicsError(f"{path}: is a directory, not a VICS document") from err
    except OSError as err:
        raise VicsError(f"{path}: cannot be read ({err.strerror or err})") from err
    except UnicodeDecodeError as err:
        raise VicsError(f"{path}: not a VICS JSON document (not UTF-8 text)") from err
    except json.JSONDecodeError as err:
        raise VicsError(f"{path}: not a VICS JSON document ({err.msg} at line {err.lineno})") from err
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise VicsError(f"{path}: not a VICS JSON document ({err})") from err
    except RecursionError as err:
        raise VicsError(f"{path}: not a VICS JSON document (nested too deeply)") from err


def _top_level_values(document: Any, path: Path) -> list[Any]:
    """The list of cases or media: `value` of an OData document, or a bare list.

    Each case's `Media` is checked here, so that a malformed document fails before
    the first entry is read.
    """
    if isinstance(document, dict):
        if "value" not in document:
            raise VicsError(f"{path}: no recognisable VICS structure (a JSON object without 'value')")
        values = document["value"]
        if not isinstance(values, list):
            raise VicsError(f"{path}: no recognisable VICS structure ('value' is not a list)")
    elif isinstance(document, list):
        values = document
    else:
        raise VicsError(f"{path}: no recognisable VICS structure (neither an object nor a list)")
    for position, element in enumerate(values):
        if _is_case(element) and not isinstance(element["Media"], (list, type(None))):
            raise VicsError(f"{path}: no recognisable VICS structure (case {position}: 'Media' is not a list)")
    return values


def _is_case(element: Any) -> bool:
    """Cases and media are told apart by shape: only a case has `Media`."""
    return isinstance(element, dict) and "Media" in element


def _parse_values(values: list[Any]) -> Iterator[VicsMedia | VicsProblem]:
    """Each media entry in document order; the document is walked, never copied."""
    index = 0
    for element in values:
        entries = (element["Media"] or []) if _is_case(element) else (element,)
        for entry in entries:
            try:
                yield _parse_entry(entry)
            except _EntryProblem as problem:
                yield VicsProblem(index, str(problem))
            index += 1


def _parse_entry(entry: Any) -> VicsMedia:
    if not isinstance(entry, dict):
        raise _EntryProblem("entry is not a JSON object")
    return VicsMedia(
        media_id=_count(entry, "MediaID"),
        category=_count(entry, "Category"),
        md5=_hex(entry, "MD5", _MD5, 32),
        sha1=_hex(entry, "SHA1", _SHA1, 40),
        size=_count(entry, "MediaSize"),
        relative_path=_relative_path(entry),
        is_precategorized=_flag(entry, "IsPrecategorized"),
    )


def _count(entry: dict[str, Any], key: str) -> int | None:
    """A non-negative integer (VICS ids, categories and sizes are all >= 0), or None if absent."""
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _EntryProblem(f"{key} is not an integer")
    if value < 0:
        raise _EntryProblem(f"{key} is negative")
    return value


def _hex(entry: dict[str, Any], key: str, pattern: re.Pattern[str], length: int) -> str | None:
    """Lowercase hex; an empty string counts as absent (some tools write "" for unknown)."""
    value = entry.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value.strip()):
        raise _EntryProblem(f"{key} is not {length} hex characters")
    return value.strip().lower()


def _relative_path(entry: dict[str, Any]) -> str | None:
    value = entry.get("RelativeFilePath")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _EntryProblem("RelativeFilePath is not a string")
    return value.replace("\\", "/")


def _flag(entry: dict[str, Any], key: str) -> bool | None:
    value = entry.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _EntryProblem(f"{key} is not a boolean")


def resolve_media_path(root: Path, relative_path: str) -> Path | str:
    """`root / relative_path` when it is a regular file really inside `root`, else why not.

    A case file is untrusted: absolute paths, drive letters, `..` and symlinks whose
    target lies outside `root` are refused with "path leaves the root", so a crafted
    case cannot make triage or training read the examiner's own files.
    """
    posix = relative_path.replace("\\", "/")
    if not posix:
        return NO_PATH
    if "\x00" in posix:
        return "invalid path"
    if posix.startswith("/") or _DRIVE.match(posix):
        return LEAVES_ROOT
    parts = PurePosixPath(posix).parts
    if ".." in parts:
        return LEAVES_ROOT
    boundary = Path(root).resolve()
    candidate = Path(root).joinpath(*parts)
    try:
        real = candidate.resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop
        return "unresolvable symlink"
    if not real.is_relative_to(boundary):
        return LEAVES_ROOT
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        return FILE_MISSING
    except OSError:
        return "cannot be read"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return candidate


def load_vics_holdings(
    case_file: Path,
    root: Path,
    classes: Sequence[str],
    category_of_class: Sequence[int],
    image_size: int,
    channels: int,
) -> Holdings:
    """A unit's categorized VICS case as training holdings, labelled by `Category`.

    Class i takes the entries whose `Category` is `category_of_class[i]`; the paths are
    read under `root`. `IsPrecategorized` is ignored: a tool's pre-categorization is a
    guess, and training on guesses would teach the federation the tool's mistakes.
    Every entry not used is reported with its reason.
    """
    case_file = Path(case_file)
    root = Path(root)
    classes, label_of_category = _check_vics_arguments(
        case_file, root, classes, category_of_class, image_size, channels
    )
    try:
        items = read_vics_media(case_file)
    except VicsError as err:
        raise HoldingsError(f"holdings.path: {err}") from err

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
        raise HoldingsError(f"holdings.path: case {case_file} gives no usable image under {root} ({why})")
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    for name, code, count in zip(classes, category_of_class, counts):
        if count == 0:
            raise HoldingsError(
                f"class {name!r} (Category {code}) has no usable image in case {case_file}; "
                "check holdings.vics_categories or remove the class"
            )
    return Holdings.from_decoded(images, labels, classes, f"vics {case_file}", skipped)


def _check_vics_arguments(
    case_file: Path,
    root: Path,
    classes: Sequence[str],
    category_of_class: Sequence[int],
    image_size: int,
    channels: int,
) -> tuple[tuple[str, ...], dict[int, int]]:
    """The class names and the label of each mapped category; errors name the setting."""
    check_image_shape(image_size, channels)
    names = checked_class_names(classes, f"the case {case_file}")
    codes = list(category_of_class)
    if len(codes) != len(names):
        raise ConfigError(
            "holdings.vics_categories",
            f"needs one category code per class: {len(codes)} codes for {len(names)} classes",
        )
    if len(set(codes)) != len(codes):
        raise ConfigError("holdings.vics_categories", f"category codes must be distinct, got {codes}")
    if not root.is_dir():
        raise HoldingsError(f"holdings.vics_root: {root} is not an existing directory (the root of case {case_file})")
    return names, {code: label for label, code in enumerate(codes)}


def _entry_name(case_file: Path, index: int, item: VicsMedia | VicsProblem) -> str:
    """How a report names an entry: its relative path, else its position in the case."""
    if isinstance(item, VicsMedia) and item.relative_path is not None:
        return item.relative_path
    return f"{case_file} entry {index}"


