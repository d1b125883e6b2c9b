"""What triage tells about a file it will not read."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RefusedEntry:
    """A file or entry triage will not read (a link out of the root, a special file, ...),
    by its path relative to the root."""

    relative_path: str
    reason: str
