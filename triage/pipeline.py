"""The streaming triage pipeline: read, hash, decode in parallel; score in batches.

Worker processes (`triage.reader`) read each file once, hash it, set aside known files,
and decode images at the model's input size and videos into their sampled frames, while
the main process runs the model on the previous batch. Processes, not threads: decoding
holds Python's lock often enough to slow the model's thread. A video's frames join the
same batches as images; its outcome is complete when its last frame is scored. Files go
to the workers in small chunks and at most a fixed window of them is in flight, so
memory stays flat however many files there are; every batch's outcomes go to the
journal before the next, so an interrupted run resumes where it stopped.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from media.video import VideoLimits
from triage.journal import FileOutcome, Journal, PendingFile
from triage.known_hashes import KnownHashes
from triage.model_source import TriageModel
from triage.reader import PerceptualRules, Prepared, ReaderContext
from triage.reader_pool import ReaderPool


@dataclass(frozen=True)
class PipelineLimits:
    """How the pipeline may use the machine."""

    batch_size: int
    decode_workers: int
    max_image_pixels: int
    max_file_bytes: int
    file_time_limit_s: float


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


@dataclass
class _Scoring:
    """A file whose model inputs are being scored, and what they scored so far."""

    prepared: Prepared
    scores: list[float] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.scores) == len(self.prepared.inputs)

    def outcome(self) -> FileOutcome:
        """The file's outcome: an image's score, or a video's best frame's, with that frame's time."""
        outcome = self.prepared.outcome
        best = int(np.argmax(self.scores))
        if not outcome.frames:
            return replace(outcome, score=self.scores[best], predicted=self.predicted[best])
        frames = tuple(replace(frame, score=score) for frame, score in zip(outcome.frames, self.scores))
        return replace(
            outcome,
            score=self.scores[best],
            predicted=self.predicted[best],
            frames=frames,
            best_time=frames[best].time_s,
        )


def classify_pending(
    journal: Journal,
    root: Path,
    known: KnownHashes,
    scorer: Scorer,
    limits: PipelineLimits,
    video: VideoLimits,
    perceptual: PerceptualRules,
    on_done: Callable[[int], None],
) -> None:
    """Process every pending file of the journal (files at `root / relative_path`).

    `on_done(n)` is called after each group of outcomes is stored.
    """
    spec = scorer.model.spec
    scorer.model.module.eval()
    chunks_in_flight = max(2, (2 * limits.batch_size) // _CHUNK + limits.decode_workers)
    batch: list[tuple[_Scoring, np.ndarray]] = []
    finished: list[FileOutcome] = []
    context = ReaderContext(
        root,
        root.resolve(),
        known,
        spec.channels,
        spec.image_size,
        limits.max_image_pixels,
        limits.max_file_bytes,
        video,
        perceptual,
        limits.file_time_limit_s,
    )
    with ReaderPool(limits.decode_workers, context) as readers:
        for prepared in readers.in_order(_chunks(journal.pending(), _CHUNK), chunks_in_flight):
            if not prepared.inputs:
                finished.append(prepared.outcome)
            else:
                scoring = _Scoring(prepared)
                for pixels in prepared.inputs:
                    batch.append((scoring, pixels))
                    if len(batch) == limits.batch_size:
                        finished.extend(_score(scorer, batch))
                        batch = []
            if len(finished) >= limits.batch_size:
                journal.record(finished)
                on_done(len(finished))
                finished = []
        if batch:
            finished.extend(_score(scorer, batch))
    if finished:
        journal.record(finished)
        on_done(len(finished))


def _chunks(items: Iterator[PendingFile], size: int) -> Iterator[list[PendingFile]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _score(scorer: Scorer, batch: list[tuple[_Scoring, np.ndarray]]) -> list[FileOutcome]:
    """Score a batch; the outcomes of the files whose last input it held."""
    scores, predicted = scorer(np.stack([pixels for _, pixels in batch]))
    completed = []
    for (scoring, _), score, label in zip(batch, scores, predicted):
        scoring.scores.append(float(score))
        scoring.predicted.append(label)
        if scoring.done:
            completed.append(scoring.outcome())
    return completed
