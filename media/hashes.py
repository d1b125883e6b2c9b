"""File identity by hash: MD5 and SHA-1 (and SHA-256 where asked) in one read, and their hex forms.

Known-file lists, VICS documents and triage reports speak MD5 and SHA-1; SHA-256 names
model files. The patterns that recognise each form live here once.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")
SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

_BLOCK = 1 << 20


@dataclass(frozen=True)
class FileHashes:
    """Lowercase hex digests of one file's bytes (SHA-256 only when asked for)."""

    md5: str
    sha1: str
    sha256: str | None = None


def hash_bytes(data: bytes, *, sha256: bool = False) -> FileHashes:
    """The digests of bytes already read (e.g. for decoding)."""
    hashers = _hashers(sha256)
    for hasher in hashers:
        hasher.update(data)
    return _digests(hashers)


def hash_file(path: Path, *, sha256: bool = False) -> FileHashes:
    """The digests of a file, read once in blocks (memory does not grow with its size)."""
    with Path(path).open("rb") as stream:
        return hash_stream(stream, sha256=sha256)


def hash_stream(stream: BinaryIO, *, sha256: bool = False) -> FileHashes:
    """The digests of what is left to read of an open file, read in blocks."""
    hashers = _hashers(sha256)
    for block in iter(lambda: stream.read(_BLOCK), b""):
        for hasher in hashers:
            hasher.update(block)
    return _digests(hashers)


def _hashers(sha256: bool) -> list["hashlib._Hash"]:
    # MD5 and SHA-1 name files in hash lists and VICS; not a security use (FIPS builds allow it so).
    hashers = [hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False)]
    return [*hashers, hashlib.sha256()] if sha256 else hashers


def _digests(hashers: list["hashlib._Hash"]) -> FileHashes:
    return FileHashes(*(hasher.hexdigest() for hasher in hashers))
