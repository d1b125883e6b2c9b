"""One triage run: model, known hashes, discovery, the streaming pipeline, the reports."""

import uuid
from collections.abc import Sequence
from pathlib import Path

import torch

from fedtriage.errors import ConfigError
from media.pdq import PDQ_SIDE
from media.vics import NO_PATH, VicsProblem, posix_path, read_vics_media, resolve_media_path
from media.walk import MediaRootError, SkippedFile, walk_media
from triage.journal import Journal
from triage.known_hashes import load_known_hashes
from triage.model_source import load_triage_model
from triage.pipeline import PipelineLimits, Scorer, classify_pending
from triage.progress import Progress
from triage.reader import PerceptualRules
from triage.reports import TriageSummary, write_reports
from triage.settings import ClassifySettings, settings_fingerprint

_SAME_PATH = "same RelativeFilePath as an earlier entry"


def classify_media(settings: ClassifySettings) -> TriageSummary:
    """Triage `settings.source` into `settings.out`, resuming a run left unfinished there."""
    torch.set_num_threads(settings.torch_threads)
    model = load_triage_model(settings.model, settings.model_version, settings.tracking_uri, settings.allow_pickle)
    relevant = relevant_indices(settings.relevant_classes, model.spec.classes)
    known = load_known_hashes([Path(path) for path in settings.known_hashes])
    journal = Journal(Path(settings.out), settings_fingerprint(settings, model.name, model.version))
    try:
        root = _discover(journal, Path(settings.source), settings.source_root)
        pending = journal.pending_count()
        progress = Progress(pending, settings.progress and pending > 0)
        classify_pending(
            journal,
            root,
            known,
            Scorer(model, relevant),
            PipelineLimits(
                batch_size=settings.batch_size,
                decode_workers=settings.decode_workers,
                max_image_pixels=settings.max_image_pixels,
                max_file_bytes=int(settings.max_file_mb * 2**20),
                file_time_limit_s=settings.file_time_limit_s,
            ),
            settings.video.limits(settings.max_image_pixels, frame_side=max(PDQ_SIDE, model.spec.image_size)),
            PerceptualRules(
                known=known.pdq_index(settings.pdq.near_known_distance),
                set_aside_near_known=settings.pdq.near_known == "set_aside",
                min_quality=settings.pdq.min_quality,
            ),
            progress.advance,
        )
        progress.close()
        summary = write_reports(journal, settings, model, journal.run_value("case-id", str(uuid.uuid4())))
        if pending == 0 and journal.attempt > 1:
            summary.note = "already complete: an earlier run triaged every file; its reports were written again"
        return summary
    finally:
        journal.close()


def relevant_indices(names: Sequence[str] | None, classes: Sequence[str]) -> tuple[int, ...]:
    """Indices of the classes whose probabilities make up the score."""
    if names is None:
        if len(classes) != 2:
            raise ConfigError(
                "relevant_classes", f"the model has classes {list(classes)}: name those that make a file relevant"
            )
        return (1,)
    unknown = [name for name in names if name not in classes]
    if unknown or not names:
        raise ConfigError("relevant_classes", f"{unknown or names} not among the model's classes {list(classes)}")
    return tuple(classes.index(name) for name in names)


def _discover(journal: Journal, source: Path, source_root: str | None) -> Path:
    """Record every file of the source in the journal, once; return the root files are read from."""
    root = source if source.is_dir() else Path(source_root) if source_root else source.parent
    if journal.discovered:
        return root
    if source.is_dir():
        try:
            for entry in walk_media(source):
                if isinstance(entry, SkippedFile):
                    journal.discover(entry.path, None, refusal=entry.reason)
                else:
                    journal.discover(entry, None)
        except MediaRootError as err:
            raise ConfigError("source", str(err)) from err
    else:
        _discover_case(journal, source, root)
    journal.finish_discovery()
    return root


def _discover_case(journal: Journal, case_file: Path, root: Path) -> None:
    """A VICS case's entries, each under its path as the case wrote it; one that cannot be read
    as a file is listed as `<entry N>`."""
    for index, entry in enumerate(read_vics_media(case_file)):
        entry_key = f"<entry {index}>"
        if isinstance(entry, VicsProblem):
            journal.discover(entry_key, None, refusal=entry.reason)
        elif not entry.relative_path:
            journal.discover(entry_key, entry.media_id, refusal=NO_PATH)
        else:
            located = resolve_media_path(root, entry.relative_path)
            refusal = located if isinstance(located, str) else None
            path = posix_path(entry.relative_path)
            if not journal.discover(path, entry.media_id, refusal=refusal, written_path=entry.relative_path):
                journal.discover(entry_key, entry.media_id, refusal=_SAME_PATH)
