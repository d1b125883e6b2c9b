"""A case's paths are untrusted: where a `RelativeFilePath` really leads, or why it is refused.

VICS paths are relative to the case's root and often Windows-style. Absolute paths,
drive letters, `..` and symlinks whose target lies outside the root are refused with
"path leaves the root", so a crafted case cannot make triage or training read the
examiner's own files.
"""

import re
import stat
from pathlib import Path, PurePosixPath

LEAVES_ROOT = "path leaves the root"
FILE_MISSING = "file missing"
NO_PATH = "no RelativeFilePath"

_DRIVE = re.compile(r"[A-Za-z]:")


def posix_path(relative_path: str) -> str:
    """A case's path with Windows separators turned into POSIX ones (how it is read here)."""
    return relative_path.replace("\\", "/")


def is_absolute(relative_path: str) -> bool:
    """True for a path that starts at a root or names a drive (either separator)."""
    posix = posix_path(relative_path)
    return posix.startswith("/") or bool(_DRIVE.match(posix))


def leaves_root(relative_path: str) -> bool:
    """True for a path that is absolute, names a drive, or climbs with `..` (either separator)."""
    return is_absolute(relative_path) or ".." in posix_path(relative_path).split("/")


def resolve_media_path(root: Path, relative_path: str) -> Path | str:
    """`root / relative_path` when it is a regular file really inside `root`, else why not."""
    if not relative_path:
        return NO_PATH
    if "\x00" in relative_path:
        return "invalid path"
    if leaves_root(relative_path):
        return LEAVES_ROOT
    parts = PurePosixPath(posix_path(relative_path)).parts
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


