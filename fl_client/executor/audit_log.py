"""A node's audit log: what it was asked and what it answered, hash-chained, written before the reply leaves.

`state/audit.jsonl` holds one JSON object per line. Each carries `seq` (1, 2, ... across
rotations) and `prev`, the SHA-256 of the previous line's bytes, so an edited, removed,
inserted or reordered line breaks the chain at the line after it. The last line has no line
after it: the node prints the head hash (the SHA-256 of the last line) for the unit to keep
elsewhere, and `verify(..., anchor=H)` checks that a kept head is still in the chain.

Lines are appended with one `write` each, and fsynced before `append` returns. A crash
mid-write leaves a torn last line; the next `AuditLog` to open the file ends it with a newline
and records it (`torn-write`, its size and SHA-256) before anything else, so it is reported,
never dropped. Past `max_bytes` the file is renamed `audit.jsonl.<k>` (k = 1, 2, ...) and a
new one starts with a `rotated` line chained to the old file's last line.

Standard library only: the ClientApp worker loads this file by path (see the package docstring).
"""

import fcntl
import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AUDIT_LOG_FILE = "audit.jsonl"
GENESIS = "0" * 64


def line_hash(line: bytes) -> str:
    """The SHA-256 of a line's bytes, without its newline: what the next line's `prev` holds."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def chain_files(path: Path) -> list[Path]:
    """The log's rotated files, oldest first, then the log itself."""
    rotated = [found for found in path.parent.glob(path.name + ".*") if found.suffix[1:].isdigit()]
    return [*sorted(rotated, key=lambda found: int(found.suffix[1:])), path]


class AuditLog:
    """Appends entries to one node's log; one writer at a time (a lock on the file)."""

    def __init__(self, path: Path, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = path
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, *entries: dict[str, Any]) -> str:
        """Write `entries` as the next lines, fsynced once; returns the new head hash."""
        with self._locked() as log:
            seq, prev = self._head(log)
            if log.tell() >= self.max_bytes:
                log = self._rotate(log)
                seq, prev = self._write(log, {"event": "rotated", "from": self._last_rotated().name}, seq, prev)
            for entry in entries:
                seq, prev = self._write(log, entry, seq, prev)
            _sync(log)
            return prev

    def head(self) -> tuple[int, str]:
        """The last entry's seq and hash (0 and the genesis hash for an empty log)."""
        with self._locked() as log:
            return self._head(log)

    def _locked(self) -> "_LockedFile":
        return _LockedFile(self.path)

    def _head(self, log: Any) -> tuple[int, str]:
        """Seq and hash of the last complete line; a torn last line is closed and recorded first."""
        log.seek(0, os.SEEK_END)
        last, torn = _tail(log)
        seq, prev = _seq_and_hash(last, self.path) if last else self._rotated_head()
        if torn:
            log.write(b"\n")
            seq, prev = self._write(log, {"event": "torn-write", "bytes": len(torn),
                                          "sha256": hashlib.sha256(torn).hexdigest()}, seq, prev)
            _sync(log)
        return seq, prev

    def _rotated_head(self) -> tuple[int, str]:
        """Where a new (or emptied) file goes on from: the last rotated file's last line."""
        rotated = chain_files(self.path)[:-1]
        if not rotated:
            return 0, GENESIS
        with rotated[-1].open("rb") as old:
            old.seek(0, os.SEEK_END)
            last, _ = _tail(old)
        return _seq_and_hash(last, rotated[-1]) if last else (0, GENESIS)

    def _rotate(self, log: Any) -> Any:
        _sync(log)
        number = 1 + max((int(found.suffix[1:]) for found in chain_files(self.path)[:-1]), default=0)
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{number}"))
        return log.reopen()

    def _last_rotated(self) -> Path:
        return chain_files(self.path)[-2]

    @staticmethod
    def _write(log: Any, entry: dict[str, Any], seq: int, prev: str) -> tuple[int, str]:
        stamped = {"seq": seq + 1, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "prev": prev, **entry}
        line = json.dumps(stamped, sort_keys=True, separators=(",", ":")).encode()
        log.write(line + b"\n")
        return seq + 1, line_hash(line)


def _sync(log: Any) -> None:
    log.flush()
    os.fsync(log.fileno())


class _LockedFile:
    """The log opened for appending under an exclusive lock (reopened after a rotation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: Any = None

    def __enter__(self) -> "_LockedFile":
        self.reopen()
        return self

    def reopen(self) -> "_LockedFile":
        if self.file is not None:
            self.file.close()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        self.file = os.fdopen(fd, "a+b")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        self.file.seek(0, os.SEEK_END)
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def _tail(log: Any) -> tuple[bytes, bytes]:
    """The last complete line of a file opened for reading, and the bytes after it (a torn write).
    Reads back from the end only as far as it must: an append costs the same for any log size."""
    end = log.seek(0, os.SEEK_END)
    window = 4096
    while True:
        start = max(0, end - window)
        log.seek(start)
        data = log.read(end - start)
        cut = data.rfind(b"\n")
        before = data.rfind(b"\n", 0, cut) if cut >= 0 else -1
        if before >= 0 or start == 0:
            break
        window *= 4
    log.seek(0, os.SEEK_END)
    if cut < 0:
        return b"", data
    return data[before + 1: cut], data[cut + 1:]


def _seq_and_hash(line: bytes, path: Path) -> tuple[int, str]:
    try:
        seq = int(json.loads(line)["seq"])
    except (ValueError, KeyError, TypeError) as err:
        raise AuditLogError(f"{path}: its last line is not an audit entry ({err}): run `fedtriage audit verify`")
    return seq, line_hash(line)


class AuditLogError(Exception):
    """The log cannot be appended to as it is."""


@dataclass
class Verdict:
    """What `verify` found: intact, or where the chain first breaks."""

    entries: int = 0
    head: str = GENESIS
    problem: str | None = None
    # Torn writes the node recorded (crashes mid-write), as "file:line".
    torn_writes: list[str] = field(default_factory=list)
    anchor_found: bool | None = None

    @property
    def intact(self) -> bool:
        return self.problem is None and self.anchor_found is not False


def verify(path: Path, anchor: str | None = None) -> Verdict:
    """Walk the log and its rotated files; the first line that breaks the chain is the problem."""
    verdict = Verdict(anchor_found=None if anchor is None else False)
    seq, prev = 0, GENESIS
    pending_torn: tuple[str, str] | None = None  # where and hash of an unreadable line, if the next records it
    lines = list(_lines(path))
    ahead = Counter(_seq_of(line) for _, _, line in lines)  # seqs of the lines not walked yet
    for file, number, line in lines:
        ahead[_seq_of(line)] -= 1
        where = f"{file.name}:{number}"
        if not line.endswith(b"\n"):
            verdict.problem = (f"{where}: torn last line of {len(line)} bytes (a crash mid-write; the node records "
                               "it when it next starts)")
            return verdict
        try:
            entry = json.loads(line)
            entry_seq, entry_prev = int(entry["seq"]), str(entry["prev"])
        except (ValueError, KeyError, TypeError):
            if pending_torn is not None:
                verdict.problem = f"{pending_torn[0]}: not an audit entry (edited)"
                return verdict
            pending_torn = (where, hashlib.sha256(line.rstrip(b"\n")).hexdigest())
            continue
        if pending_torn is not None:
            if entry.get("event") != "torn-write" or entry.get("sha256") != pending_torn[1]:
                verdict.problem = f"{pending_torn[0]}: not an audit entry (edited)"
                return verdict
            verdict.torn_writes.append(pending_torn[0])
            pending_torn = None
        problem = _link_problem(where, entry_seq, entry_prev, seq, prev, ahead[seq + 1] > 0)
        if problem:
            verdict.problem = problem
            return verdict
        seq, prev = entry_seq, line_hash(line)
        verdict.entries += 1
        if prev == anchor:
            verdict.anchor_found = True
    if pending_torn is not None:
        verdict.problem = f"{pending_torn[0]}: not an audit entry (edited)"
    verdict.head = prev
    return verdict


def _link_problem(where: str, seq: int, prev_hash: str, last_seq: int, last_hash: str, next_comes_later: bool
                  ) -> str | None:
    if seq == last_seq + 1 and prev_hash == last_hash:
        return None
    if seq == last_seq + 1:
        return f"{where}: the line before it was edited (its hash is not the one this line records)"
    if seq > last_seq + 1 and next_comes_later:
        return f"{where}: reordered (seq {seq} before seq {last_seq + 1})"
    if seq > last_seq + 1:
        return f"{where}: {seq - last_seq - 1} line(s) removed before it (seq {last_seq} then {seq})"
    return f"{where}: inserted or reordered (seq {seq} after seq {last_seq})"


def _seq_of(line: bytes) -> int | None:
    try:
        return int(json.loads(line)["seq"])
    except (ValueError, KeyError, TypeError):
        return None


def _lines(path: Path) -> Iterator[tuple[Path, int, bytes]]:
    for file in chain_files(path):
        if not file.exists():
            continue
        with file.open("rb") as source:
            for number, line in enumerate(source, start=1):
                yield file, number, line


def entries(path: Path) -> Iterator[dict[str, Any]]:
    """The log's readable entries, oldest first (for showing; `verify` says whether to trust them)."""
    for _, _, line in _lines(path):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry
