"""Walking an untrusted tree of files without leaving it.

Holdings folders and seized media are walked alike: depth first, in name order,
following links only while they stay inside the root, each real file once. Every
entry not walked (a link out, a loop, a special file, an unreadable folder) is
reported with the reason, never silently left out.
"""

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fedtriage.errors import BadInput


@dataclass(frozen=True)
class SkippedFile:
    """A file or folder that was not used, and a short phrase saying why."""

    path: str
    reason: str


class MediaRootError(BadInput):
    """The root itself cannot be walked."""


def walk_media(root: Path) -> Iterator[str | SkippedFile]:
    """The path (relative, POSIX) of every regular file under `root`, depth first in name
    order, or a `SkippedFile` (relative path) saying why an entry is not read.

    Hidden files are kept: on a seized device they are evidence like any other.
    """
    if not root.is_dir():
        raise MediaRootError(f"{root} is not a directory")
    try:
        with os.scandir(root):
            pass
    except OSError as err:
        raise MediaRootError(f"{root} cannot be read ({err.strerror or err})") from err
    boundary = root.resolve()
    skipped: list[SkippedFile] = []
    for path in regular_files(root, boundary, set(), skipped, skip_hidden=False):
        yield from _relative(skipped, root)
        yield path.relative_to(root).as_posix()
    yield from _relative(skipped, root)


def _relative(skipped: list[SkippedFile], root: Path) -> Iterator[SkippedFile]:
    while skipped:
        entry = skipped.pop(0)
        folder = "/" if entry.path.endswith(os.sep) else ""
        yield SkippedFile(Path(entry.path).relative_to(root).as_posix() + folder, entry.reason)


def regular_files(
    path: Path, boundary: Path, seen: set[Path], skipped: list[SkippedFile], skip_hidden: bool
) -> Iterator[Path]:
    """Regular files under `path` (itself included), depth first in name order.

    Links that leave `boundary`, loops and special files are recorded in `skipped`
    instead, and so are hidden entries when `skip_hidden` (holdings; seized media
    keeps them). Links inside `boundary` are followed once. `seen` holds the real paths
    of folders and of link targets only, so memory grows with folders and links, not
    files; the price: a link to a file that the walk already read directly is read
    again under the link's name.
    """
    real = _admit(path, boundary, seen, skipped)
    if real is None:
        return
    if not real.is_dir():
        yield path
        return
    yield from _folder(path, real, boundary, seen, skipped, skip_hidden)


def _folder(
    path: Path, real: Path, boundary: Path, seen: set[Path], skipped: list[SkippedFile], skip_hidden: bool
) -> Iterator[Path]:
    """The contents of an admitted folder. Only links are resolved; the rest is known
    from the directory listing itself, so large trees walk without a stat per file."""
    try:
        with os.scandir(path) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError:
        # The trailing separator says it is a folder: the files inside it went unseen.
        skipped.append(SkippedFile(f"{path}{os.sep}", "folder cannot be read"))
        return
    for entry in entries:
        entry_path = path / entry.name
        if skip_hidden and entry.name.startswith("."):
            reason = "hidden folder" if entry.is_dir() else "hidden file"
            skipped.append(SkippedFile(str(entry_path), reason))
            continue
        if entry.is_symlink():
            yield from regular_files(entry_path, boundary, seen, skipped, skip_hidden)
            continue
        entry_real = real / entry.name
        if entry_real in seen:
            skipped.append(SkippedFile(str(entry_path), "already read through another link"))
        elif entry.is_dir(follow_symlinks=False):
            seen.add(entry_real)
            yield from _folder(entry_path, entry_real, boundary, seen, skipped, skip_hidden)
        elif entry.is_file(follow_symlinks=False):
            yield entry_path  # not remembered: only a link can lead here again, and link targets are
        else:
            skipped.append(SkippedFile(str(entry_path), "not a regular file"))


def _admit(path: Path, boundary: Path, seen: set[Path], skipped: list[SkippedFile]) -> Path | None:
    """The real path of a folder or regular file that may be read, else None (recorded)."""
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        skipped.append(SkippedFile(str(path), "broken symlink"))
        return None
    except (OSError, RuntimeError):  # a symlink loop
        skipped.append(SkippedFile(str(path), "unresolvable symlink"))
        return None
    if not real.is_relative_to(boundary):
        skipped.append(SkippedFile(str(path), "symlink leads outside the root (not followed)"))
        return None
    if real in seen:
        skipped.append(SkippedFile(str(path), "already read through another link"))
        return None
    try:
        mode = real.stat().st_mode
    except OSError:
        skipped.append(SkippedFile(str(path), "cannot be read"))
        return None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        skipped.append(SkippedFile(str(path), "not a regular file"))
        return None
    seen.add(real)
    return real
