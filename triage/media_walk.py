"""The files of a seized device's tree, each once, without ever leaving the root.

Hidden files are evidence like any other and are kept. Links are followed only while
they stay inside the root; a link that leads out, a loop, a special file (FIFO,
device) is reported, never read.
"""

from collections.abc import Iterator
from pathlib import Path

from fl_client.holdings.file_walk import regular_files
from fl_client.holdings.holdings import SkippedFile
from triage.media import RefusedEntry


class MediaRootError(ValueError):
    """The input root cannot be walked at all."""


def walk_media(root: Path) -> Iterator[str | RefusedEntry]:
    """The path (relative, POSIX) of every regular file under `root`, depth first in name
    order, or why an entry is not read."""
    if not root.is_dir():
        raise MediaRootError(f"source: {root} is not a directory")
    boundary = root.resolve()
    refused: list[SkippedFile] = []
    for path in regular_files(root, boundary, set(), refused, skip_hidden=False):
        yield from _drain(refused, root)
        yield path.relative_to(root).as_posix()
    yield from _drain(refused, root)


def _drain(refused: list[SkippedFile], root: Path) -> Iterator[RefusedEntry]:
    while refused:
        entry = refused.pop(0)
        yield RefusedEntry(Path(entry.path).relative_to(root).as_posix(), entry.reason)
