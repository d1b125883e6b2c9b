"""The streaming triage pipeline: read, hash, decode in parallel; score in batches.

Worker processes read each file once, hash it (MD5 and SHA-1, for known lists and the
VICS export), set aside known files and videos, and decode images at the model's
input size, while the main process runs the model on the previous batch. Processes,
not threads: decoding holds Python's lock often enough to slow the model's thread.
Files go to the workers in small chunks and at most a fixed window of them is in
flight, so memory stays flat however many files there are; every batch's outcomes go
to the journal before the next, so an interrupted run resumes where it stopped.
"""

import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from media.decode import UnreadableImage, decode_image
from media.hashes import hash_bytes
from media.kind import is_video
from triage.journal import CLASSIFIED, KNOWN, REFUSED, UNREADABLE, VIDEO, FileOutcome, Journal, PendingFile
from triage.known_hashes import KnownHashes
from triage.model_source import TriageModel

_KNOWN_REASON = "hash on a known-material list"
_VIDEO_REASON = "video (not handled)"


@dataclass(frozen=True)
class PipelineLimits:
    """How the pipeline may use the machine."""

    batch_size: int
    decode_workers: int
    max_image_pixels: int
    max_file_bytes: int


@dataclass(frozen=True)
class Scorer:
    """Turns a batch of images into scores: summed probabilities of the relevant classes."""

    model: TriageModel
    relevant: tuple[int, ...]

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
        batch = torch.from_numpy(images).float().div_(255.0)
        with torch.inference_mode():
            probabilities = torch.softmax(self.model.module(batch), dim=1)
        scores = probabilities[:, list(self.relevant)].sum(dim=1).numpy()
        classes = self.model.spec.classes
        return scores, [classes[index] for index in probabilities.argmax(dim=1).tolist()]


# Files handed to a worker at a time: amortizes inter-process overhead, keeps order.
_CHUNK = 16

Prepared = tuple[FileOutcome, np.ndarray | None]


def classify_pending(
    journal: Journal,
    root: Path,
    known: KnownHashes,
    scorer: Scorer,
    limits: PipelineLimits,
    on_done: Callable[[int], None],
) -> None:
    """Process every pending file of the journal (files at `root / relative_path`).

    `on_done(n)` is called after each group of outcomes is stored.
    """
    spec = scorer.model.spec
    scorer.model.module.eval()
    chunks_in_flight = max(2, (2 * limits.batch_size) // _CHUNK + limits.decode_workers)
    images: list[np.ndarray] = []
    waiting: list[FileOutcome] = []  # outcomes of the images in `images`, same order
    finished: list[FileOutcome] = []
    with ProcessPoolExecutor(
        max_workers=limits.decode_workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_reader,
        initargs=(
            _ReaderContext(
                root, root.resolve(), known, spec.channels, spec.image_size, limits.max_image_pixels,
                limits.max_file_bytes,
            ),
        ),
    ) as pool:
        for outcome, pixels in _in_order(pool, _chunks(journal.pending(), _CHUNK), chunks_in_flight):
            if pixels is None:
                finished.append(outcome)
            else:
                waiting.append(outcome)
                images.append(pixels)
                if len(images) == limits.batch_size:
                    finished.extend(_score(scorer, waiting, images))
                    waiting, images = [], []
            if len(finished) >= limits.batch_size:
                journal.record(finished)
                on_done(len(finished))
                finished = []
        if images:
            finished.extend(_score(scorer, waiting, images))
    if finished:
        journal.record(finished)
        on_done(len(finished))


def _chunks(items: Iterator[PendingFile], size: int) -> Iterator[list[PendingFile]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _in_order(
    pool: ProcessPoolExecutor, chunks: Iterator[list[PendingFile]], window: int
) -> Iterator[Prepared]:
    """Prepared files, in order, with at most `window` chunks in flight."""
    in_flight: deque[Future[list[Prepared]]] = deque()
    for chunk in chunks:
        in_flight.append(pool.submit(_prepare_chunk, chunk))
        if len(in_flight) >= window:
            yield from in_flight.popleft().result()
    while in_flight:
        yield from in_flight.popleft().result()


@dataclass(frozen=True)
class _ReaderContext:
    """What every reader process needs; set once per process by `_start_reader`."""

    root: Path
    boundary: Path  # the root's real path: nothing outside it is read, however links change
    known: KnownHashes
    channels: int
    image_size: int
    max_image_pixels: int
    max_file_bytes: int


_READER: list[_ReaderContext] = []  # this reader process's context (one entry)


def _start_reader(context: _ReaderContext) -> None:
    # Ctrl-C reaches the whole foreground group: the command stops its readers itself, so a
    # reader must not die of it mid-task (with a traceback of its own on the console).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _READER.append(context)


def _prepare_chunk(chunk: list[PendingFile]) -> list[Prepared]:
    (context,) = _READER
    return [_prepare(pending, context) for pending in chunk]


def _score(scorer: Scorer, outcomes: list[FileOutcome], images: list[np.ndarray]) -> list[FileOutcome]:
    scores, predicted = scorer(np.stack(images))
    return [
        FileOutcome(
            seq=o.seq, status=CLASSIFIED, size=o.size, md5=o.md5, sha1=o.sha1, score=float(score), predicted=label
        )
        for o, score, label in zip(outcomes, scores, predicted)
    ]


def _prepare(pending: PendingFile, context: _ReaderContext) -> Prepared:
    """Read, hash and decode one file (in a reader process)."""
    try:
        # Confinement is checked again at read time: links may have changed since discovery
        # (a resumed run, a live file system).
        real = (context.root / pending.relative_path).resolve(strict=True)
        if not real.is_relative_to(context.boundary):
            return FileOutcome(pending.seq, REFUSED, "symlink leads outside the root (not followed)"), None
        size = real.stat().st_size
        if size > context.max_file_bytes:
            return FileOutcome(pending.seq, UNREADABLE, "file too large (max_file_mb)", size=size), None
        data = real.read_bytes()
    except FileNotFoundError:
        return FileOutcome(pending.seq, UNREADABLE, "file missing"), None
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop
        return FileOutcome(pending.seq, UNREADABLE, "cannot be read"), None
    hashes = hash_bytes(data)
    facts = {"size": len(data), "md5": hashes.md5, "sha1": hashes.sha1}
    if context.known.is_known(hashes.md5, hashes.sha1):
        return FileOutcome(pending.seq, KNOWN, _KNOWN_REASON, **facts), None
    if is_video(pending.relative_path, data[:16]):
        return FileOutcome(pending.seq, VIDEO, _VIDEO_REASON, **facts), None
    try:
        pixels = decode_image(data, context.channels, context.image_size, context.max_image_pixels)
    except UnreadableImage as unreadable:
        return FileOutcome(pending.seq, UNREADABLE, unreadable.reason, **facts), None
    return FileOutcome(pending.seq, CLASSIFIED, **facts), pixels
