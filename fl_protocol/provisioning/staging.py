"""Writing kits so that a failure never leaves half of one: stage everything, then put it in place.

Every file a command makes is first written into a staging folder beside KITS; nothing
under KITS changes until all of them are there, so a bad input or a failure while making
keys leaves KITS as it was. Then a kit that did not exist appears whole (one rename; the
first provisioning renames all of KITS at once), a new file in an existing kit appears
complete or not at all (a hard link, which never replaces a file, not even one that
appeared meanwhile), and a file meant to change (a roster, a description) is swapped in
by one rename. Keys are never replaced: one that must go is moved into `retired/` first.
A crash during that last step can leave an existing kit with some of its new files and
not others; a re-run completes it.
"""

import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType

from fedtriage.errors import ConfigError

PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
FOLDER_MODE = 0o700


class KitsTransaction:
    """The files one command adds, changes and retires under `out`, put in place by `commit`.

    Use as a context manager: leaving it without `commit` (an error) removes the staging folder.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.staging = out.parent / f".{out.name}.staging-{secrets.token_hex(4)}"
        self.staging.mkdir(mode=FOLDER_MODE)
        os.chmod(self.staging, FOLDER_MODE)
        self._replaced: set[str] = set()
        self._retired: list[tuple[str, str]] = []

    def __enter__(self) -> "KitsTransaction":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def folder(self, relative: str) -> Path:
        """The staged folder `relative` (owner-only), made if missing."""
        path = self.staging / relative
        _make_folders(self.staging, path)
        return path

    def write(self, relative: str, data: bytes, *, private: bool = False) -> Path:
        """Stage a file (0600 if `private`, created exclusively); return its staged path."""
        path = self.folder(str(Path(relative).parent)) / Path(relative).name
        mode = PRIVATE_FILE_MODE if private else PUBLIC_FILE_MODE
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.chmod(path, mode)
        return path

    def offer(self, relative: str) -> str:
        """For a staged file that may change an existing one: "created", "updated" or "kept" (unstaged).

        Only for files that are no key: a roster, a certificate copy, a description.
        """
        staged, existing = self.staging / relative, self.out / relative
        if not existing.exists():
            return "created"
        if existing.is_file() and existing.read_bytes() == staged.read_bytes():
            staged.unlink()
            return "kept"
        self._replaced.add(relative)
        return "updated"

    def retire(self, relative: str, into: str) -> None:
        """Move the existing file `relative` into folder `into` at commit, before anything new lands."""
        self._retired.append((relative, f"{into}/{Path(relative).name}"))

    def commit(self) -> None:
        """Put every staged file in place (see the module's docstring)."""
        if not self.out.exists():
            os.rename(self.staging, self.out)
            return
        for _, target in self._retired:
            if (self.out / target).exists():
                raise ConfigError("--out", f"{self.out / target} already exists; nothing was retired or changed")
        for relative, target in self._retired:
            destination = self.out / target
            _make_folders(self.out, destination.parent)
            os.rename(self.out / relative, destination)
        self._place(Path("."))

    def _place(self, relative: Path) -> None:
        for staged in sorted((self.staging / relative).iterdir()):
            inner = relative / staged.name
            final = self.out / inner
            if staged.is_dir():
                if final.exists():
                    self._place(inner)
                else:
                    os.rename(staged, final)  # a whole new kit or folder at once
            elif inner.as_posix() in self._replaced:
                os.replace(staged, final)
            else:
                try:
                    os.link(staged, final)  # appears complete, and never replaces a file (a key)
                except FileExistsError as err:
                    raise ConfigError("--out", f"{final} appeared while provisioning; run again") from err


def _make_folders(root: Path, folder: Path) -> None:
    """`folder` and its missing parents under `root`, owner-only."""
    missing = [path for path in [folder, *folder.parents] if root in path.parents]
    for path in reversed(missing):
        if not path.exists():
            path.mkdir(mode=FOLDER_MODE)
            os.chmod(path, FOLDER_MODE)
