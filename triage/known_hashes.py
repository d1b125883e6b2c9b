"""Hashes of files already known, so triage sets them aside instead of scoring them.

A unit's known-file lists come as plain text (one MD5 or SHA-1 per line, often with
more columns) or as VICS hash sets. A list that cannot be read exactly is refused,
naming the file and line: a garbled list would silently match fewer files, and the
examiner would review, or miss, files the unit already knows.

Lists may also carry PDQ perceptual hashes, which find a known picture after it was
resized or re-encoded. In a text list a PDQ hash is written `pdq:<64 hex>`: bare, 64
hex digits could as well be a SHA-256, and a SHA-256 read as a PDQ hash would match
pictures it says nothing about. (SHA-256 lists are not supported.) VICS hash sets
carry PDQ where `media.vics.read` finds it.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedtriage.errors import BadInput
from media.hashes import MD5_HEX, SHA1_HEX, SHA256_HEX
from media.pdq import PDQ_HEX, PdqIndex
from media.vics import VicsError, VicsProblem, read_vics_media

# The first column ends at whitespace or a comma (tab-, space- and comma-separated lists).
_COLUMN_END = re.compile(r"[\s,]")
_SNIFF_BYTES = 4096
_PDQ_PREFIX = "pdq:"


class KnownHashesError(BadInput):
    """A known-hash list that cannot be read exactly; the message names file (and line)."""


@dataclass(frozen=True)
class KnownHashes:
    """Lowercase hex MD5, SHA-1 and PDQ values of known files."""

    md5: frozenset[str]
    sha1: frozenset[str]
    pdq: frozenset[str] = frozenset()
    # One index per match distance, built on first use: a list of 100,000 PDQ hashes
    # takes a tenth of a second to index, and triage asks for it once a run.
    _pdq_indexes: dict[int, PdqIndex] = field(default_factory=dict, init=False, repr=False, compare=False)

    def is_known(self, md5: str, sha1: str) -> bool:
        """Whether a file with these (lowercase hex) hashes is known by either of them."""
        return md5 in self.md5 or sha1 in self.sha1

    def pdq_index(self, max_distance: int) -> PdqIndex:
        """The known PDQ hashes, for finding the one nearest to a picture's (Meta recommends 31)."""
        index = self._pdq_indexes.get(max_distance)
        if index is None:
            index = self._pdq_indexes[max_distance] = PdqIndex(self.pdq, max_distance)
        return index

    def __len__(self) -> int:
        return len(self.md5) + len(self.sha1) + len(self.pdq)


@dataclass
class _Found:
    """The hashes read so far, by kind."""

    md5: set[str] = field(default_factory=set)
    sha1: set[str] = field(default_factory=set)
    pdq: set[str] = field(default_factory=set)


def load_known_hashes(paths: Sequence[Path]) -> KnownHashes:
    """The union of the known hashes in `paths` (text lists or VICS JSON documents)."""
    found = _Found()
    for path in paths:
        path = Path(path)
        if _looks_like_json(path):
            _read_vics(path, found)
        else:
            _read_text_list(path, found)
    return KnownHashes(md5=frozenset(found.md5), sha1=frozenset(found.sha1), pdq=frozenset(found.pdq))


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


def _read_vics(path: Path, found: _Found) -> None:
    try:
        for index, item in enumerate(read_vics_media(path)):
            if isinstance(item, VicsProblem):
                raise KnownHashesError(f"{path}: media entry {item.index}: {item.reason}")
            if item.pdq_problem is not None:
                raise KnownHashesError(f"{path}: media entry {index}: {item.pdq_problem}")
            # An entry without hashes matches nothing, whatever else it says.
            if item.md5 is not None:
                found.md5.add(item.md5)
            if item.sha1 is not None:
                found.sha1.add(item.sha1)
            found.pdq.update(item.pdq)
    except VicsError as err:
        raise KnownHashesError(str(err)) from err


def _read_text_list(path: Path, found: _Found) -> None:
    try:
        with path.open("rb") as stream:
            for number, raw in enumerate(stream, start=1):
                _add_line(path, number, raw, found)
    except OSError as err:
        raise KnownHashesError(f"{path}: known-hash list cannot be read ({err.strerror or err})") from err


def _add_line(path: Path, number: int, raw: bytes, found: _Found) -> None:
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
        found.md5.add(token)
    elif SHA1_HEX.fullmatch(token):
        found.sha1.add(token)
    elif token.startswith(_PDQ_PREFIX):
        if not PDQ_HEX.fullmatch(token.removeprefix(_PDQ_PREFIX)):
            raise KnownHashesError(f"{path}:{number}: 'pdq:' is not followed by 64 hex characters: {token[:72]!r}")
        found.pdq.add(token.removeprefix(_PDQ_PREFIX))
    elif SHA256_HEX.fullmatch(token):
        raise KnownHashesError(
            f"{path}:{number}: first column is 64 hex characters, a SHA-256 or a PDQ hash: "
            "SHA-256 lists are not supported, and a PDQ hash must be written 'pdq:<64 hex>'"
        )
    else:
        raise KnownHashesError(
            f"{path}:{number}: first column is not an MD5 (32 hex) or SHA-1 (40 hex) value: {token[:48]!r}"
        )
