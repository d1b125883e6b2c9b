"""The triage journal: one SQLite row per file, written as the run goes.

It is what makes a run resumable (finished files are never classified again), what
keeps memory flat however many files there are (results live on disk, rankings are
SQL queries), and the single source every report is written from.
"""

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedtriage.errors import BadInput, ConfigError

JOURNAL_FILE = "journal.sqlite"

PENDING = "pending"
CLASSIFIED = "classified"
KNOWN = "known"
NEAR_KNOWN = "near-known"  # set aside by its perceptual hash (only when near_known=set_aside)
UNREADABLE = "unreadable"
REFUSED = "refused"
STATUSES = (CLASSIFIED, KNOWN, NEAR_KNOWN, UNREADABLE, REFUSED)

IMAGE = "image"
VIDEO = "video"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS media (
    seq INTEGER PRIMARY KEY,
    relative_path TEXT NOT NULL UNIQUE,
    written_path TEXT,
    media_id INTEGER,
    status TEXT NOT NULL,
    reason TEXT,
    size INTEGER,
    md5 TEXT,
    sha1 TEXT,
    score REAL,
    predicted TEXT,
    attempt INTEGER,
    kind TEXT,
    pdq TEXT,
    pdq_quality INTEGER,
    near_known INTEGER,
    near_known_pdq TEXT,
    best_time REAL,
    near_known_time REAL
);
-- A video's sampled frames: when each is, its score and perceptual hash.
CREATE TABLE IF NOT EXISTS frames (
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    score REAL,
    pdq TEXT,
    pdq_quality INTEGER
);
CREATE INDEX IF NOT EXISTS frames_seq ON frames(seq);
-- Pending files in discovery order, and classified ones in score order, both read
-- straight from an index: no sort, however many files.
CREATE INDEX IF NOT EXISTS media_status ON media(status);
CREATE INDEX IF NOT EXISTS media_rank ON media(status, score DESC, seq);
"""
_ROW_COLUMNS = (
    "seq, relative_path, written_path, media_id, status, reason, size, md5, sha1, score, predicted, kind, pdq, "
    "near_known, near_known_pdq, best_time, near_known_time, "
    "(SELECT COUNT(*) FROM frames WHERE frames.seq = media.seq), "
    "(SELECT COUNT(*) FROM frames WHERE frames.seq = media.seq AND frames.score >= ?)"
)
# Columns later versions added, for journals an earlier version left unfinished.
_ADDED_COLUMNS = {
    "written_path": "TEXT", "kind": "TEXT", "pdq": "TEXT", "pdq_quality": "INTEGER", "near_known": "INTEGER",
    "near_known_pdq": "TEXT", "best_time": "REAL", "near_known_time": "REAL",
}


class JournalMismatch(BadInput):
    """The output folder holds a journal of a run with other settings or another model."""


def _mismatch(out: Path, stored: str, fingerprint: dict[str, Any]) -> str:
    try:
        earlier = json.loads(stored)
    except ValueError:
        earlier = {}
    if isinstance(earlier, dict) and not set(fingerprint) <= set(earlier):
        return (f"out: {out} holds a triage run an earlier fedtriage version started (its journal has no "
                f"{', '.join(sorted(set(fingerprint) - set(earlier)))} settings); finish it with that version, "
                "or use a new output folder")
    return (f"out: {out} holds a triage run of other settings or another model ({stored}); "
            "use a new output folder to start afresh")


@dataclass(frozen=True)
class PendingFile:
    """A discovered file still to be hashed and classified."""

    seq: int
    relative_path: str
    media_id: int | None


@dataclass(frozen=True)
class FrameOutcome:
    """One sampled frame of a video: when it is, its score, its perceptual hash (no pixels)."""

    time_s: float
    score: float | None = None
    pdq: str | None = None
    pdq_quality: int | None = None


@dataclass(frozen=True)
class FileOutcome:
    """What triage found out about one file (no image content)."""

    seq: int
    status: str
    reason: str | None = None
    size: int | None = None
    md5: str | None = None
    sha1: str | None = None
    score: float | None = None
    predicted: str | None = None
    kind: str | None = None  # IMAGE or VIDEO, once the file was read
    pdq: str | None = None  # an image's PDQ hash (a video's are its frames')
    pdq_quality: int | None = None
    near_known: int | None = None  # Hamming distance to the nearest listed PDQ hash, when within the threshold
    near_known_pdq: str | None = None  # that listed hash
    best_time: float | None = None  # a video: the time of its best-scored frame
    near_known_time: float | None = None  # a video: the time of its frame nearest a listed PDQ hash
    frames: tuple[FrameOutcome, ...] = ()


@dataclass(frozen=True)
class JournalRow:
    """One file as the reports show it."""

    seq: int
    relative_path: str
    # As a VICS case wrote the path (e.g. with backslashes); None for a folder source.
    written_path: str | None
    media_id: int | None
    status: str
    reason: str | None
    size: int | None
    md5: str | None
    sha1: str | None
    score: float | None
    predicted: str | None
    kind: str | None
    pdq: str | None
    near_known: int | None
    near_known_pdq: str | None
    best_time: float | None
    near_known_time: float | None
    frames: int
    frames_at_or_above: int

    @property
    def reported_path(self) -> str:
        """The path reports give: the case's own spelling where there is one."""
        return self.written_path if self.written_path is not None else self.relative_path


class Journal:
    """The journal of one triage run in its output folder."""

    def __init__(self, out: Path, fingerprint: dict[str, Any]) -> None:
        try:
            out.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(out / JOURNAL_FILE)
            # Write-ahead log: a commit per batch stays cheap, and a crash keeps the journal consistent.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            wanted = json.dumps(fingerprint, sort_keys=True)
            stored = self._stored_fingerprint()
            if stored is not None and stored != wanted:  # refused before anything in the folder changes
                self._db.close()
                raise JournalMismatch(_mismatch(out, stored, fingerprint))
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError("out", f"{out} cannot be written ({getattr(err, 'strerror', None) or err})") from err
        self._add_missing_columns()
        if stored is None:
            self._db.execute("INSERT INTO run VALUES ('fingerprint', ?)", (wanted,))
            self._db.commit()
        # Which run of this output folder stored an outcome: a resumed run leaves earlier ones be.
        self.attempt = int(self.run_value("attempts", "0")) + 1
        self._db.execute("UPDATE run SET value = ? WHERE key = 'attempts'", (str(self.attempt),))
        self._db.commit()

    def _stored_fingerprint(self) -> str | None:
        """The fingerprint of the run this folder holds, if it holds one."""
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'run'").fetchone() is None:
            return None
        stored = self._db.execute("SELECT value FROM run WHERE key = 'fingerprint'").fetchone()
        return None if stored is None else str(stored[0])

    def _add_missing_columns(self) -> None:
        """A run an earlier version left unfinished resumes: its journal gains the newer columns."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(media)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in present:
                self._db.execute(f"ALTER TABLE media ADD COLUMN {name} {kind}")
        self._db.commit()

    def run_value(self, key: str, default: str) -> str:
        """A value fixed on the first run and kept on resumption (e.g. the VICS CaseID)."""
        stored = self._db.execute("SELECT value FROM run WHERE key = ?", (key,)).fetchone()
        if stored is not None:
            return str(stored[0])
        self._db.execute("INSERT INTO run VALUES (?, ?)", (key, default))
        self._db.commit()
        return default

    @property
    def discovered(self) -> bool:
        """Whether a run already recorded every file of the source (a resumed run skips discovery)."""
        return self._db.execute("SELECT 1 FROM run WHERE key = 'discovered'").fetchone() is not None

    def discover(
        self, relative_path: str, media_id: int | None, refusal: str | None = None, written_path: str | None = None
    ) -> bool:
        """Record a file (POSIX path under the root); False if one with this path is recorded already.

        `written_path` is the path as a VICS case wrote it, kept for the reports.
        """
        status, reason = (REFUSED, refusal) if refusal else (PENDING, None)
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO media (relative_path, written_path, media_id, status, reason) "
            "VALUES (?, ?, ?, ?, ?)",
            (relative_path, written_path, media_id, status, reason),
        )
        return cursor.rowcount == 1

    def finish_discovery(self) -> None:
        """Commit the discovered files and the mark that discovery is done, in one transaction:
        an interrupted discovery leaves nothing, and is simply done again."""
        self._db.execute("INSERT INTO run VALUES ('discovered', 'yes')")
        self._db.commit()

    def pending_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM media WHERE status = ?", (PENDING,)).fetchone()[0])

    def pending(self, chunk: int = 1000) -> Iterator[PendingFile]:
        """Pending files in discovery order, fetched a chunk at a time."""
        last = -1
        while True:
            rows = self._db.execute(
                "SELECT seq, relative_path, media_id FROM media WHERE status = ? AND seq > ? ORDER BY seq LIMIT ?",
                (PENDING, last, chunk),
            ).fetchall()
            if not rows:
                return
            for seq, relative_path, media_id in rows:
                yield PendingFile(seq, relative_path, media_id)
            last = rows[-1][0]

    def record(self, outcomes: Iterable[FileOutcome]) -> None:
        """Store outcomes (a video's with its frames) and commit: a crash after this loses none of them."""
        outcomes = list(outcomes)
        self._db.executemany(
            "UPDATE media SET status = ?, reason = ?, size = ?, md5 = ?, sha1 = ?, score = ?, predicted = ?, "
            "attempt = ?, kind = ?, pdq = ?, pdq_quality = ?, near_known = ?, near_known_pdq = ?, best_time = ?, "
            "near_known_time = ? "
            "WHERE seq = ?",
            [
                (o.status, o.reason, o.size, o.md5, o.sha1, o.score, o.predicted, self.attempt, o.kind, o.pdq,
                 o.pdq_quality, o.near_known, o.near_known_pdq, o.best_time,
                 o.near_known_time, o.seq)
                for o in outcomes
            ],
        )
        self._db.executemany("DELETE FROM frames WHERE seq = ?", [(o.seq,) for o in outcomes if o.frames])
        self._db.executemany(
            "INSERT INTO frames (seq, time, score, pdq, pdq_quality) VALUES (?, ?, ?, ?, ?)",
            [(o.seq, f.time_s, f.score, f.pdq, f.pdq_quality) for o in outcomes for f in o.frames],
        )
        self._db.commit()

    def ranked(self, threshold: float) -> Iterator[JournalRow]:
        """Every file: classified ones by score (highest first), then the rest in discovery order.

        A video's row counts its frames scored at or above `threshold`.
        """
        for condition, order in (("status = ?", "score DESC, seq"), ("status != ?", "seq")):
            query = f"SELECT {_ROW_COLUMNS} FROM media WHERE {condition} ORDER BY {order}"
            for row in self._db.execute(query, (threshold, CLASSIFIED)):
                yield JournalRow(*row)

    def perceptual_hashes(self, min_quality: int) -> Iterator[tuple[int, str]]:
        """(seq, PDQ hex) of every image and video frame hashed at `min_quality` or better."""
        yield from self._db.execute(
            "SELECT seq, pdq FROM media WHERE pdq IS NOT NULL AND pdq_quality >= ? "
            "UNION ALL SELECT seq, pdq FROM frames WHERE pdq IS NOT NULL AND pdq_quality >= ?",
            (min_quality, min_quality),
        )

    def count_near_known(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM media WHERE near_known IS NOT NULL").fetchone()[0])

    def count_frames_scored(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM frames WHERE score IS NOT NULL").fetchone()[0])

    def count_kind(self, status: str, kind: str) -> int:
        return int(
            self._db.execute("SELECT COUNT(*) FROM media WHERE status = ? AND kind = ?", (status, kind)).fetchone()[0]
        )

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM media GROUP BY status")
        return {status: count for status, count in rows}

    def count_at_or_above(self, score: float) -> int:
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM media WHERE status = ? AND score >= ?", (CLASSIFIED, score)
            ).fetchone()[0]
        )

    def close(self) -> None:
        self._db.close()
