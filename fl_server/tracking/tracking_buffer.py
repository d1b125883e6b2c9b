"""Tracking records waiting on disk for MLflow to answer again.

A tracking outage must not stop training, and nothing tracked may be lost with it: what
MLflow could not take is appended here, one JSON line per record, each written through to
the disk (fsync) so that a crash of the server process loses none, with a copy of every
file a record names (a hard link where the file system allows: no space, and the copy
outlives the original). `state.json` says how many records were sent and to which MLflow
run, so a send that breaks off halfway resumes where it stopped instead of sending a record
twice. Nothing here talks to MLflow; `write_journal` decides what goes in and sends it.
"""

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# The folder a run's buffer gets in its output folder (`-2`, `-3`... when one is left from an earlier run).
BUFFER_FOLDER = "tracking-buffer"
_RECORDS = "records.jsonl"
_STATE = "state.json"
_FILES = "files"


@dataclass
class BufferState:
    """Where the buffered records go and how far sending them got."""

    tracking_uri: str
    sent: int = 0
    experiment_id: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None


class TrackingBuffer:
    """An append-only file of records, the files they name, and the state of sending them."""

    def __init__(self, folder: Path, state: BufferState) -> None:
        self.folder = folder
        self.state = state
        self._count = len(self._read())

    @classmethod
    def create(cls, folder: Path, state: BufferState) -> "TrackingBuffer":
        """A new, empty buffer in `folder` (created; it must not hold a buffer yet)."""
        (folder / _FILES).mkdir(parents=True, exist_ok=False)
        buffer = cls(folder, state)
        buffer.save_state()
        return buffer

    @classmethod
    def open(cls, folder: Path) -> "TrackingBuffer":
        """The buffer a run left in `folder`; ValueError when `folder` holds none."""
        try:
            state = BufferState(**json.loads((folder / _STATE).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as err:
            raise ValueError(f"{folder} is not a tracking buffer ({type(err).__name__}: {err})") from err
        return cls(folder, state)

    def __len__(self) -> int:
        """Records still to send."""
        return self._count - self.state.sent

    def append(self, record: dict[str, Any], files: tuple[str, ...] = ()) -> None:
        """Add `record` after the others; its fields named in `files` are paths, copied in first."""
        stored = dict(record)
        for key in files:
            stored[key] = str(self._keep_file(Path(record[key])))
        line = json.dumps(stored).encode() + b"\n"
        with (self.folder / _RECORDS).open("ab+") as sink:
            if sink.tell() and (sink.seek(-1, os.SEEK_END), sink.read(1))[1] != b"\n":
                line = b"\n" + line  # after a line a crash cut short
            sink.write(line)
            sink.flush()
            os.fsync(sink.fileno())
        self._count += 1

    def file_slot(self) -> Path:
        """A new empty folder for a file a record will name (e.g. a saved model)."""
        slot = self.folder / _FILES / str(len(list((self.folder / _FILES).iterdir())))
        slot.mkdir()
        return slot

    def pending(self) -> list[dict[str, Any]]:
        """The records not sent yet, oldest first."""
        return self._read()[self.state.sent :]

    def save_state(self) -> None:
        """Write `state` atomically and durably (after each record sent)."""
        partial = self.folder / f"{_STATE}.partial"
        with partial.open("w", encoding="utf-8") as sink:
            sink.write(json.dumps(asdict(self.state)))
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(partial, self.folder / _STATE)

    def remove(self) -> None:
        """Delete the buffer: everything in it was sent."""
        shutil.rmtree(self.folder)

    def _keep_file(self, source: Path) -> Path:
        target = self.file_slot() / source.name
        try:
            os.link(source, target)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(source, target)
        return target

    def _read(self) -> list[dict[str, Any]]:
        try:
            text = (self.folder / _RECORDS).read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # a line a crash cut short: the one record that never was written
                continue
        return records


def is_buffer(folder: Path) -> bool:
    """Whether `folder` holds a tracking buffer."""
    return (folder / _STATE).is_file()


def free_buffer_folder(output_dir: Path) -> Path:
    """`<output_dir>/tracking-buffer`, or the first `-N` not taken by an earlier run's buffer."""
    folder, number = output_dir / BUFFER_FOLDER, 1
    while folder.exists():
        number += 1
        folder = output_dir / f"{BUFFER_FOLDER}-{number}"
    return folder
