"""Writing a VICS 2.0 case, for the investigators' forensic tools to import.

A seized device can hold millions of files, so the document is streamed: the case
header, then one media object at a time, then the footer; memory does not grow with
the number of entries. It is written next to its destination and renamed into place,
so a tool never imports half a case. Every entry is checked before it is written, as
the published field list has it: `MediaMetadata` entries are `PropertyName` /
`PropertyValue` pairs, and a `RelativeFilePath` is written exactly as given (a case's
own, backslashes included), so the tool matches each entry to its own.
"""

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from media.hashes import MD5_HEX, SHA1_HEX
from media.vics.paths import is_absolute

VICS_CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{profile}/$metadata#Cases"

_PROFILE = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class VicsExportEntry:
    """One file: its identity, where it is on the device (as its case wrote it), and what is said of it."""

    media_id: int
    md5: str
    sha1: str
    size: int
    relative_path: str
    metadata: tuple[tuple[str, str], ...]
    category: int | None = None


def write_vics_export(
    path: Path,
    entries: Iterable[VicsExportEntry],
    profile: str,
    case_id: str,
    case_number: str | None,
    source_application: str,
) -> int:
    """Write `entries` as a one-case VICS document at `path`; return how many were written.

    `profile` names the VICS profile in `@odata.context` (Default, US, UK, ...). An
    entry that does not fit the format raises `ValueError` and leaves nothing behind.
    """
    path = Path(path)
    if not isinstance(profile, str) or not _PROFILE.fullmatch(profile):
        raise ValueError(f"VICS profile must be letters, digits or '_', got {profile!r}")
    partial = path.with_suffix(".partial")
    if partial == path:
        raise ValueError(f"{path}: the export cannot itself end in .partial")
    head = _document_head(profile, case_id, case_number, source_application)
    try:
        with partial.open("w", encoding="utf-8") as stream:
            count = _write_document(stream, head, entries)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count


def _document_head(profile: str, case_id: str, case_number: str | None, source_application: str) -> str:
    """The document up to the case's first media entry: context, case fields, `"Media": [`."""
    case: dict[str, Any] = {"CaseID": case_id}
    if case_number is not None:
        case["CaseNumber"] = case_number
    case["SourceApplicationName"] = source_application
    for key, value in case.items():
        if not isinstance(value, str):
            raise ValueError(f"VICS {key} must be a string, got {type(value).__name__}")
    # The case object as JSON, minus its closing brace, so that "Media" can be streamed into it.
    case_head = json.dumps(case)[:-1]
    context = json.dumps(VICS_CONTEXT.format(profile=profile))
    return f'{{"@odata.context": {context}, "value": [{case_head}, "Media": [\n'


def _write_document(stream: TextIO, head: str, entries: Iterable[VicsExportEntry]) -> int:
    """The document, one media entry at a time; returns how many were written."""
    stream.write(head)
    count = 0
    for entry in entries:
        if count:
            stream.write(",\n")
        stream.write(json.dumps(_media_object(entry)))
        count += 1
    stream.write("\n]}]}\n")
    return count


def _media_object(entry: VicsExportEntry) -> dict[str, Any]:
    """The VICS media object of one entry, checked against the export's schema."""
    _check_count(entry.media_id, "MediaID", entry)
    if not isinstance(entry.md5, str) or not MD5_HEX.fullmatch(entry.md5):
        raise ValueError(f"media {entry.media_id}: MD5 must be 32 hex characters")
    if not isinstance(entry.sha1, str) or not SHA1_HEX.fullmatch(entry.sha1):
        raise ValueError(f"media {entry.media_id}: SHA1 must be 40 hex characters")
    _check_count(entry.size, "MediaSize", entry)
    relative = entry.relative_path
    if not isinstance(relative, str) or not relative or is_absolute(relative):
        raise ValueError(f"media {entry.media_id}: RelativeFilePath must be a non-empty relative path")
    media: dict[str, Any] = {"MediaID": entry.media_id}
    if entry.category is not None:
        _check_count(entry.category, "Category", entry)
        media["Category"] = entry.category
    media["MD5"] = entry.md5.upper()
    media["SHA1"] = entry.sha1.upper()
    media["MediaSize"] = entry.size
    media["RelativeFilePath"] = relative
    media["MediaMetadata"] = [_property(entry, name, value) for name, value in entry.metadata]
    return media


def _check_count(value: Any, key: str, entry: VicsExportEntry) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"media {entry.media_id!r}: {key} must be an integer >= 0, got {value!r}")


def _property(entry: VicsExportEntry, name: Any, value: Any) -> dict[str, str]:
    if not isinstance(name, str) or not isinstance(value, str):
        raise ValueError(f"media {entry.media_id}: MediaMetadata names and values must be strings")
    return {"PropertyName": name, "PropertyValue": value}
