"""What triage reads and what it tells about each file."""

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MediaItem:
    """A file to triage: where it is, how reports name it, and its VICS id if it had one."""

    path: Path
    relative_path: str
    media_id: int | None = None


@dataclass(frozen=True)
class RefusedEntry:
    """A file or entry triage will not read (a link out of the root, a special file, ...)."""

    relative_path: str
    reason: str
