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
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from media.decode import UnreadableImage, decode_upright, fit_pixels
from media.hashes import FileHashes, hash_bytes, hash_stream
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
_OUTSIDE = "symlink leads outside the root (not followed)"


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
    time_limit_s: float  # a file taking longer stops its reader (`file_time_limit_s`)


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
    # A file that keeps a decoder busy past the limit ends this process (SIGALRM's default
    # action works even inside a decoder's own loop, where no Python code runs); the
    # pipeline finds the file and lists it (`triage.reader_pool`).
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    _READER.append(context)


def prepare_chunk(chunk: list[PendingFile]) -> list[Prepared]:
    """Read a chunk of files (in a reader process), each within the time limit."""
    (context,) = _READER
    prepared = []
    for pending in chunk:
        signal.setitimer(signal.ITIMER_REAL, context.time_limit_s)
        prepared.append(prepare(pending, context))
        signal.setitimer(signal.ITIMER_REAL, 0)
    return prepared


def prepare(pending: PendingFile, context: ReaderContext) -> Prepared:
    """Read, hash, match and decode one file."""
    seq = pending.seq
    path = os.path.join(context.root, pending.relative_path)
    try:
        # Confinement is checked again at read time, as links may have changed since
        # discovery (a resumed run, a live file system): before the open, so that no device
        # or file outside the root is ever opened, and on the file the open gave.
        refused = _refusal(os.path.realpath(path, strict=True), os.stat(path).st_mode, context)
        stream = None if refused is not None else open(path, "rb", opener=_open_flags)  # noqa: SIM115
        if stream is not None and (refused := _opened_refusal(stream.fileno(), context)) is not None:
            stream.close()
    except FileNotFoundError:
        return Prepared(FileOutcome(seq, UNREADABLE, "file missing"))
    except OSError:  # a symlink loop among them, no permission
        return Prepared(FileOutcome(seq, UNREADABLE, "cannot be read"))
    if refused is not None:
        return Prepared(FileOutcome(seq, REFUSED if refused == _OUTSIDE else UNREADABLE, refused))
    try:
        with stream:
            head = stream.read(_HEAD_BYTES)
            if is_video(pending.relative_path, head):
                return _prepare_video(seq, stream, context)
            size = os.fstat(stream.fileno()).st_size
            if size > context.max_file_bytes:
                return Prepared(FileOutcome(seq, UNREADABLE, "file too large (max_file_mb)", size=size))
            data = head + stream.read()
    except OSError:
        return Prepared(FileOutcome(seq, UNREADABLE, "cannot be read"))
    return _prepare_image(seq, data, context)


def _open_flags(path: str, flags: int) -> int:
    """Opens without blocking, so that a FIFO swapped in for the file cannot hang the reader."""
    return os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))


def _refusal(real: str, mode: int, context: ReaderContext) -> str | None:
    """Why a file whose real path is `real` is not read; None if it is."""
    boundary = str(context.boundary)
    if real != boundary and not real.startswith(boundary.rstrip(os.sep) + os.sep):
        return _OUTSIDE
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def _opened_refusal(descriptor: int, context: ReaderContext) -> str | None:
    """The same judgement on the file actually opened, which the kernel names (/proc/self/fd):
    a link swapped in between the check and the open cannot lead out. Without /proc, the
    check before the open stands alone."""
    try:
        real = os.readlink(f"/proc/self/fd/{descriptor}")
    except OSError:
        return None
    return _refusal(real, os.fstat(descriptor).st_mode, context)


def _prepare_image(seq: int, data: bytes, context: ReaderContext) -> Prepared:
    hashes = hash_bytes(data)
    outcome = _identified(seq, len(data), hashes, IMAGE)
    if context.known.is_known(hashes.md5, hashes.sha1):
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


def _prepare_video(seq: int, stream: BinaryIO, context: ReaderContext) -> Prepared:
    """A video, from the file already opened (and confined): hashed as a stream (however large),
    then its sampled frames decoded one by one."""
    stream.seek(0)
    hashes = hash_stream(stream)
    outcome = _identified(seq, stream.tell(), hashes, VIDEO)
    if context.known.is_known(hashes.md5, hashes.sha1):
        return Prepared(replace(outcome, status=KNOWN, reason=_KNOWN_REASON))
    try:
        scan = _scan_video(stream, context, spread=True)
        if scan.ends_early and scan.duration_s:
            # The header declared a far longer video, and the samples were spread over that: again,
            # unspread, so a lying duration cannot hide the video's content.
            lied = f"declares {scan.duration_s:.0f} s but ends at {scan.ended_at_s:.0f} s"
            scan = _scan_video(stream, context, spread=False)
            scan.note = "; ".join(filter(None, (lied, scan.note)))
    except UnreadableVideo as unreadable:
        return Prepared(replace(outcome, status=UNREADABLE, reason=unreadable.reason))
    if not scan.frames:
        return Prepared(replace(outcome, status=UNREADABLE, reason="video holds no decodable frame"))
    outcome = replace(outcome, reason=scan.note, frames=tuple(scan.frames))
    if scan.nearest is not None:
        outcome = replace(outcome, near_known=scan.nearest[0], near_known_pdq=scan.nearest[1],
                          near_known_time=scan.nearest[2])
        if context.perceptual.set_aside_near_known:
            return Prepared(replace(outcome, status=NEAR_KNOWN, reason=_NEAR_KNOWN_REASON))
    return Prepared(outcome, tuple(scan.inputs))


@dataclass
class _VideoScan:
    """What one pass over a video gave: its frames' outcomes and model inputs, and what to say of it."""

    frames: list[FrameOutcome] = field(default_factory=list)
    inputs: list[np.ndarray] = field(default_factory=list)
    nearest: tuple[int, str, float] | None = None  # distance, listed hash, frame time
    note: str | None = None
    duration_s: float | None = None
    ended_at_s: float | None = None
    ends_early: bool = False  # the last frame came before half the declared duration, the file undamaged


def _scan_video(stream: BinaryIO, context: ReaderContext, spread: bool) -> _VideoScan:
    scan = _VideoScan()
    stream.seek(0)
    with KeyFrames(stream, context.video, spread=spread) as video:
        scan.duration_s = video.duration_s
        damaged = False
        try:
            for frame in video:
                picture = Image.fromarray(frame.rgb)
                pdq = pdq_of_picture(picture)
                scan.frames.append(FrameOutcome(frame.time_s, pdq=pdq.hex, pdq_quality=pdq.quality))
                scan.inputs.append(fit_pixels(picture, context.channels, context.image_size))
                near = _near_known(pdq, context)
                if near is not None and (scan.nearest is None or near[0] < scan.nearest[0]):
                    scan.nearest = (*near, frame.time_s)
        except UnreadableVideo as broken:
            if not scan.frames:
                raise
            damaged = True
            scan.note = f"{broken.reason}: scored by the {len(scan.frames)} frame(s) sampled before the damage"
        scan.note = scan.note or video.stopped_early
        scan.ended_at_s = video.ended_at_s
        complete = not damaged and video.stopped_early is None and len(scan.frames) < context.video.max_frames
        scan.ends_early = bool(
            spread and complete and video.duration_s and scan.ended_at_s is not None
            and scan.ended_at_s < video.duration_s / 2
        )
    return scan


def _identified(seq: int, size: int, hashes: FileHashes, kind: str) -> FileOutcome:
    return FileOutcome(seq, CLASSIFIED, size=size, md5=hashes.md5, sha1=hashes.sha1, kind=kind)


def _near_known(pdq: PdqHash, context: ReaderContext) -> tuple[int, str] | None:
    """(distance, listed hash) of the nearest listed PDQ hash within the threshold; None when there
    is none, or when the picture is too featureless for its hash to mean anything."""
    if pdq.quality < context.perceptual.min_quality:
        return None
    return context.perceptual.known.nearest(pdq)
