"""An exclusive lock beside a node-side file, so overlapping runs read and write it in turn."""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked_beside(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<path>.lock` (creating the folder 0700, the lock file 0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock
