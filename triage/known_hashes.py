"""Hashes of files already known, so triage sets them aside instead of scoring them.

A unit's known-file lists come as plain text (one MD5 or SHA-1 per line, often with
more columns) or as VICS hash sets. A list that cannot be read exactly is refused,
naming the file and line: a garbled list would silently match fewer files, and the
examiner would review, or miss, files the unit already knows.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedtriage.errors import BadInput
from media.hashes import MD5_HEX, SHA1_HEX
from media.vics import VicsError, VicsProblem, read_vics_media

# The first column ends at whitespace or a comma (tab-, space- and comma-separated lists).
_COLUMN_END = re.compile(r"[\s,]")
_SNIFF_BYTES = 4096


class KnownHashesError(BadInput):
    """A known-hash list that cannot be read exactly; the message names file (and line)."""


@dataclass(frozen=True)
class KnownHashes:
    """Lowercase hex MD5 and SHA-1 values of known files."""

    md5: frozenset[str]
    sha1: frozenset[str]

    def is_known(self, md5: str, sha1: str) -> bool:
        """Whether a file with these (lowercase hex) hashes is known by either of them."""
        return md5 in self.md5 or sha1 in self.sha1

    def __len__(self) -> int:
        return len(self.md5) + len(self.sha1)


def load_known_hashes(paths: Sequence[Path]) -> KnownHashes:
    """The union of the known hashes in `paths` (text lists or VICS JSON documents)."""
    md5: set[str] = set()
    sha1: set[str] = set()
    for path in paths:
        path = Path(path)
        if _looks_like_json(path):
            _read_vics(path, md5, sha1)
        else:
            _read_text_list(path, md5, sha1)
    return KnownHashes(md5=frozenset(md5), sha1=frozenset(sha1))


def _looks_like_json(path: Path) -> bool:
    """A VICS document starts with '{' or '[' (after an optional BOM and whitespace)."""
    try:
        with path.open("rb") as stream:
            head = stream.read(_SNIFF_BYTES)
    except FileNotFoundError as err:
        raise KnownHashesError(f"{path}: known-hash list does not exist") from err
    except OSError as err:
        raise KnownHashesError(f"{path}: known-hash list cannot be read ({err.strerror or err})") from err
    return head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"[")


def _read_vics(path: Path, md5: set[str], sha1: set[str]) -> None:
    try:
        for item in read_vics_media(path):
            if isinstance(item, VicsProblem):
                raise KnownHashesError(f"{path}: media entry {item.index}: {item.reason}")
            # An entry without hashes matches nothing, whatever else it says.
            if item.md5 is not None:
                md5.add(item.md5)
            if item.sha1 is not None:
                sha1.add(item.sha1)
    except VicsError as err:
        raise KnownHashesError(str(err)) from err


def _read_text_list(path: Path, md5: set[str], sha1: set[str]) -> None:
    try:
        with path.open("rb") as stream:
            for number, raw in enumerate(stream, start=1):
                _add_line(path, number, raw, md5, sha1)
    except OSError as err:
        raise KnownHashesError(f"{path}: known-hash list cannot be read ({err.strerror or err})") from err


def _add_line(path: Path, number: int, raw: bytes, md5: set[str], sha1: set[str]) -> None:
    if number == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        line = raw.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise KnownHashesError(f"{path}:{number}: not UTF-8 text") from err
    if not line or line.startswith("#"):
        return
    token = _COLUMN_END.split(line, maxsplit=1)[0].strip('"').lower()
    if MD5_HEX.fullmatch(token):
        md5.add(token)
    elif SHA1_HEX.fullmatch(token):
        sha1.add(token)
    else:
        raise KnownHashesError(
            f"{path}:{number}: first column is not an MD5 (32 hex) or SHA-1 (40 hex) value: {token[:48]!r}"
        )
