"""File identity by hash: MD5, SHA-1 and SHA-256 in one read, and their hex forms.

Known-file lists, VICS documents and triage reports all speak MD5 and SHA-1 (and
SHA-256 for model files); the patterns that recognise them live here once.
"""

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")
SHA1_HEX = re.compile(r"[0-9a-fA-F]{40}")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")

_BLOCK = 1 << 20


@dataclass(frozen=True)
class FileHashes:
    """Lowercase hex digests of one file's bytes."""

    md5: str
    sha1: str
    sha256: str


def hash_bytes(data: bytes) -> FileHashes:
    """The digests of bytes already read (e.g. for decoding)."""
    return FileHashes(
        # File identity for hash lists and VICS, not a security use (FIPS builds allow it so).
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def hash_file(path: Path) -> FileHashes:
    """The digests of a file, read once in blocks (memory does not grow with its size)."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha1 = hashlib.sha1(usedforsecurity=False)
    sha256 = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(_BLOCK), b""):
            md5.update(block)
            sha1.update(block)
            sha256.update(block)
    return FileHashes(md5=md5.hexdigest(), sha1=sha1.hexdigest(), sha256=sha256.hexdigest())
