"""Reading VICS 2.0 (Project VIC) documents: a unit's categorized case, or a set of known hashes.

Forensic tools export cases and hash sets as OData-style JSON; fields are optional in
practice and their spelling varies between tools (uppercase hashes, Windows paths,
booleans as strings). The reader turns each media entry into a `VicsMedia` or, when a
field cannot be used, a `VicsProblem`: one bad entry never costs the rest of a
document. Paths are kept exactly as the case wrote them (backslashes included), so a
tool that imports what fedtriage writes back matches its own entries;
`media.vics.paths` reads them safely.

PDQ hashes have no field of their own in the published VICS 2.0 material. Tools carry
hashes beyond MD5 and SHA-1 either as a media property named after the hash (Griffeye
writes `"PhotoDNA": "..."`) or as `AlternativeHashes` entries (`{"HashName": "SHA1",
"HashValue": "..."}`); and a case's per-file facts travel as `MediaMetadata`
`PropertyName`/`PropertyValue` pairs. So a PDQ hash, 64 hex digits, is read from any of
a media property `"PDQ"`, an `AlternativeHashes` entry whose `HashName` is PDQ, or a
`MediaMetadata` entry whose `PropertyName` is PDQ (these two names in any case).
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedtriage.errors import BadInput
from media.hashes import MD5_HEX, SHA1_HEX
from media.pdq import PDQ_HEX


class VicsError(BadInput):
    """A VICS document that cannot be read at all; the message names the file."""


@dataclass(frozen=True)
class VicsMedia:
    """One media entry: hashes as lowercase hex, the path exactly as the case wrote it.

    `pdq` holds the entry's PDQ hashes in document order. A PDQ value that cannot be
    read leaves the rest of the entry usable (a case's training labels do not depend
    on it): `pdq_problem` says why, in the words of a `VicsProblem` reason, for the
    readers that need every hash (known-hash lists).
    """

    media_id: int | None
    category: int | None
    md5: str | None
    sha1: str | None
    size: int | None
    relative_path: str | None
    is_precategorized: bool | None
    pdq: tuple[str, ...] = ()
    pdq_problem: str | None = None


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
    try:
        pdq, pdq_problem = _pdq_values(entry), None
    except _EntryProblem as problem:
        pdq, pdq_problem = (), str(problem)
    return VicsMedia(
        media_id=_count(entry, "MediaID"),
        category=_count(entry, "Category"),
        md5=_hex(entry, "MD5", MD5_HEX, 32),
        sha1=_hex(entry, "SHA1", SHA1_HEX, 40),
        size=_count(entry, "MediaSize"),
        relative_path=_relative_path(entry),
        is_precategorized=_flag(entry, "IsPrecategorized"),
        pdq=pdq,
        pdq_problem=pdq_problem,
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


def _pdq_values(entry: dict[str, Any]) -> tuple[str, ...]:
    """The entry's PDQ hashes, lowercase, each once, from wherever tools put them (see the module)."""
    values = [entry.get("PDQ")]
    values += _named_values(entry.get("AlternativeHashes"), "HashName", "HashValue")
    values += _named_values(entry.get("MediaMetadata"), "PropertyName", "PropertyValue")
    found: dict[str, None] = {}
    for value in values:
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not PDQ_HEX.fullmatch(value.strip()):
            raise _EntryProblem("PDQ is not 64 hex characters")
        found[value.strip().lower()] = None
    return tuple(found)


def _named_values(pairs: Any, name_key: str, value_key: str) -> list[Any]:
    """The values of the name/value objects of `pairs` that are named PDQ.

    Anything else in these lists (other hashes, other properties, malformed entries)
    is no concern of fedtriage's and is passed over, as before PDQ was read.
    """
    if not isinstance(pairs, list):
        return []
    return [
        pair.get(value_key)
        for pair in pairs
        if isinstance(pair, dict) and isinstance(pair.get(name_key), str) and pair[name_key].strip().upper() == "PDQ"
    ]


def _relative_path(entry: dict[str, Any]) -> str | None:
    value = entry.get("RelativeFilePath")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _EntryProblem("RelativeFilePath is not a string")
    return value


def _flag(entry: dict[str, Any], key: str) -> bool | None:
    value = entry.get(key)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _EntryProblem(f"{key} is not a boolean")
