"""One file of a seized device, read in a worker process: hashed, matched, decoded, never trusted.

A file is read once and hashed (MD5 and SHA-1, for known lists and the VICS export); a
file on a known list goes no further. An image is decoded once, and that one picture
gives both the model's input and its PDQ hash; a video is hashed as a stream and its
sampled key frames each give a model input and a PDQ hash. A PDQ hash near one on a
known list makes the file near-known. Nothing here holds more than one video frame at
full size, and nothing a file holds can make it fatal to the run: every failure is an
outcome with a reason.
"""

import os
import signal
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from media.decode import UnreadableImage, decode_upright, fit_pixels
from media.hashes import FileHashes, hash_bytes, hash_file
from media.kind import is_video
from media.pdq import PDQ_SIDE, PdqHash, PdqIndex, pdq_of_picture
from media.video import KeyFrames, UnreadableVideo, VideoLimits
from triage.journal import (
    CLASSIFIED,
    IMAGE,
    KNOWN,
    NEAR_KNOWN,
    REFUSED,
    UNREADABLE,
    VIDEO,
    FileOutcome,
    FrameOutcome,
    PendingFile,
)
from triage.known_hashes import KnownHashes

_KNOWN_REASON = "hash on a known-material list"
_NEAR_KNOWN_REASON = "perceptual hash near a known-material list's (set aside)"
_HEAD_BYTES = 16


@dataclass(frozen=True)
class PerceptualRules:
    """How PDQ hashes are matched (`pdq.*`)."""

    known: PdqIndex  # the listed PDQ hashes, with the near-known distance
    set_aside_near_known: bool
    min_quality: int


@dataclass(frozen=True)
class ReaderContext:
    """What every reader process needs; set once per process by `start_reader`."""

    root: Path
    boundary: Path  # the root's real path: nothing outside it is read, however links change
    known: KnownHashes
    channels: int
    image_size: int
    max_image_pixels: int
    max_file_bytes: int
    video: VideoLimits
    perceptual: PerceptualRules


@dataclass(frozen=True)
class Prepared:
    """A file read: its outcome so far, and the model inputs still to score (none, an image, a
    video's frames, in the order of `outcome.frames`)."""

    outcome: FileOutcome
    inputs: tuple[np.ndarray, ...] = ()


_READER: list[ReaderContext] = []  # this reader process's context (one entry)


def start_reader(context: ReaderContext) -> None:
    """Initializer of a reader process."""
    # Ctrl-C reaches the whole foreground group: the command stops its readers itself, so a
    # reader must not die of it mid-task (with a traceback of its own on the console).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _READER.append(context)


def prepare_chunk(chunk: list[PendingFile]) -> list[Prepared]:
    """Read a chunk of files (in a reader process)."""
    (context,) = _READER
    return [prepare(pending, context) for pending in chunk]


def prepare(pending: PendingFile, context: ReaderContext) -> Prepared:
    """Read, hash, match and decode one file."""
    seq = pending.seq
    try:
        # Confinement is checked again at read time: links may have changed since discovery
        # (a resumed run, a live file system).
        real = Path(os.path.realpath(context.root / pending.relative_path, strict=True))
        if not real.is_relative_to(context.boundary):
            return Prepared(FileOutcome(seq, REFUSED, "symlink leads outside the root (not followed)"))
        with real.open("rb") as stream:
            head = stream.read(_HEAD_BYTES)
            if is_video(pending.relative_path, head):
                return _prepare_video(seq, real, context)
            size = os.fstat(stream.fileno()).st_size
            if size > context.max_file_bytes:
                return Prepared(FileOutcome(seq, UNREADABLE, "file too large (max_file_mb)", size=size))
            data = head + stream.read()
    except FileNotFoundError:
        return Prepared(FileOutcome(seq, UNREADABLE, "file missing"))
    except OSError:  # a symlink loop among them
        return Prepared(FileOutcome(seq, UNREADABLE, "cannot be read"))
    return _prepare_image(seq, data, context)


def _prepare_image(seq: int, data: bytes, context: ReaderContext) -> Prepared:
    outcome = _identified(seq, len(data), hash_bytes(data), IMAGE)
    if context.known.is_known(outcome.md5 or "", outcome.sha1 or ""):
        return Prepared(replace(outcome, status=KNOWN, reason=_KNOWN_REASON))
    try:
        picture = decode_upright(data, max(context.image_size, PDQ_SIDE), context.max_image_pixels)
    except UnreadableImage as unreadable:
        return Prepared(replace(outcome, status=UNREADABLE, reason=unreadable.reason))
    pdq = pdq_of_picture(picture)
    outcome = replace(outcome, pdq=pdq.hex, pdq_quality=pdq.quality)
    near = _near_known(pdq, context)
    if near is not None:
        outcome = replace(outcome, near_known=near[0], near_known_pdq=near[1])
    if near is not None and context.perceptual.set_aside_near_known:
        return Prepared(replace(outcome, status=NEAR_KNOWN, reason=_NEAR_KNOWN_REASON))
    return Prepared(outcome, (fit_pixels(picture, context.channels, context.image_size),))


def _prepare_video(seq: int, real: Path, context: ReaderContext) -> Prepared:
    """A video: hashed as a stream (however large), then its sampled frames decoded one by one."""
    hashes = hash_file(real)
    outcome = _identified(seq, real.stat().st_size, hashes, VIDEO)
    if context.known.is_known(hashes.md5, hashes.sha1):
        return Prepared(replace(outcome, status=KNOWN, reason=_KNOWN_REASON))
    frames: list[FrameOutcome] = []
    inputs: list[np.ndarray] = []
    nearest: tuple[int, str, float] | None = None  # distance, listed hash, frame time
    stopped: str | None = None
    try:
        with real.open("rb") as stream, KeyFrames(stream, context.video) as video:
            try:
                for frame in video:
                    picture = Image.fromarray(frame.rgb)
                    pdq = pdq_of_picture(picture)
                    frames.append(FrameOutcome(frame.time_s, pdq=pdq.hex, pdq_quality=pdq.quality))
                    inputs.append(fit_pixels(picture, context.channels, context.image_size))
                    near = _near_known(pdq, context)
                    if near is not None and (nearest is None or near[0] < nearest[0]):
                        nearest = (*near, frame.time_s)
            except UnreadableVideo as broken:
                if not frames:
                    raise
                stopped = f"{broken.reason}: scored by the {len(frames)} frame(s) sampled before the damage"
            stopped = stopped or video.stopped_early
    except UnreadableVideo as unreadable:
        return Prepared(replace(outcome, status=UNREADABLE, reason=unreadable.reason))
    except OSError:
        return Prepared(replace(outcome, status=UNREADABLE, reason="cannot be read"))
    if not frames:
        return Prepared(replace(outcome, status=UNREADABLE, reason="video holds no decodable frame"))
    outcome = replace(outcome, reason=stopped, frames=tuple(frames))
    if nearest is not None:
        outcome = replace(outcome, near_known=nearest[0], near_known_pdq=nearest[1], best_time=nearest[2])
        if context.perceptual.set_aside_near_known:
            return Prepared(replace(outcome, status=NEAR_KNOWN, reason=_NEAR_KNOWN_REASON))
    return Prepared(outcome, tuple(inputs))


def _identified(seq: int, size: int, hashes: FileHashes, kind: str) -> FileOutcome:
    return FileOutcome(seq, CLASSIFIED, size=size, md5=hashes.md5, sha1=hashes.sha1, kind=kind)


def _near_known(pdq: PdqHash, context: ReaderContext) -> tuple[int, str] | None:
    """(distance, listed hash) of the nearest listed PDQ hash within the threshold; None when there
    is none, or when the picture is too featureless for its hash to mean anything."""
    if pdq.quality < context.perceptual.min_quality:
        return None
    return context.perceptual.known.nearest(pdq)
