"""The triage outputs, all written from the journal, ranked by score, never with image content.

CSV and JSON for people and scripts; a VICS 2.0 export for the investigators' forensic
tools, with the scores as MediaMetadata naming the model and its version. A video is one
row: its best frame's score and time, and how many frames reach the threshold. Files
near a listed PDQ hash carry the distance; near-duplicates on the device share a group
number, and the best-ranked file of each group is its representative, so an
investigator can review one per group. Each file is streamed row by row, so writing a
million rows needs no more memory than one (groups hold one entry per grouped file).
"""

import csv
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from fedtriage.fingerprint import code_fingerprint
from media.vics import VicsExportEntry, write_vics_export
from triage.journal import CLASSIFIED, KNOWN, REFUSED, UNREADABLE, VIDEO, Journal, JournalRow
from triage.model_source import TriageModel
from triage.near_duplicates import group_near_duplicates
from triage.settings import CategoryThreshold, ClassifySettings

CSV_FILE = "triage.csv"
JSON_FILE = "triage.json"
VICS_FILE = "triage_vics.json"
SUMMARY_FILE = "summary.json"

_COLUMNS = (
    "rank", "relative_path", "status", "score", "predicted_class", "md5", "sha1", "size", "media_id", "reason",
    "category", "kind", "best_frame_time", "frames", "frames_at_or_above", "near_known", "near_known_pdq",
    "near_known_time", "group", "representative", "pdq",
)
_METADATA_PREFIX = "fedtriage."


@dataclass
class TriageSummary:
    """What a triage run saw and where its outputs are."""

    files_seen: int
    known: int
    near_known: int
    near_known_set_aside: bool
    classified: int
    videos: int  # of the classified
    frames_scored: int  # of those videos
    unreadable: int
    refused: int
    above_threshold: int
    threshold: float
    near_duplicate_groups: int
    files_in_groups: int
    model: str
    model_version: str
    out: str
    # For the chain of custody: what was triaged, with which weights and code, and when.
    source: str = ""
    source_root: str | None = None
    model_sha256: str = ""
    tool: str = ""
    finished_at: str = ""
    # Said to the user, not part of the record (e.g. that an earlier run had finished it all).
    note: str | None = None

    def record(self) -> dict[str, object]:
        """The summary as `summary.json` and `triage.json` keep it (the note is for the console)."""
        return {key: value for key, value in asdict(self).items() if key != "note"}

    def lines(self) -> list[str]:
        return [
            f"files seen:        {self.files_seen}",
            f"known (by hash):   {self.known}",
            f"near-known (PDQ):  {self.near_known} ({'set aside' if self.near_known_set_aside else 'scored'})",
            f"classified:        {self.classified} ({self.videos} videos, by {self.frames_scored} frames)",
            f"  score >= {self.threshold:g}:    {self.above_threshold}",
            f"unreadable:        {self.unreadable}",
            f"refused (links out of the root, special files, bad entries): {self.refused}",
            f"near-duplicate groups: {self.near_duplicate_groups} ({self.files_in_groups} files)",
            f"model: {self.model} (version {self.model_version})",
            f"outputs: {self.out}/{{{CSV_FILE},{JSON_FILE},{VICS_FILE},{SUMMARY_FILE}}}",
        ]


class CategoryRules:
    """`category_thresholds`: the highest `min_score` a score reaches gives its VICS Category."""

    def __init__(self, thresholds: Sequence[CategoryThreshold]) -> None:
        self._rules = sorted(thresholds, key=lambda rule: rule.min_score, reverse=True)

    def category(self, score: float | None) -> int | None:
        if score is None:
            return None
        return next((rule.category for rule in self._rules if score >= rule.min_score), None)


def media_id(row: JournalRow) -> int | None:
    """The MediaID a file has in every report: the case's own, else, for a file the VICS export
    lists (one that was read and hashed), its place in the journal."""
    if row.media_id is not None or row.md5 is None:
        return row.media_id
    return row.seq


class NearDuplicateGroups:
    """Group numbers of near-duplicate files, 1 for the group whose best file ranks highest, and
    the representative of each: its best-ranked file."""

    def __init__(self, journal: Journal, settings: ClassifySettings) -> None:
        hashes = journal.perceptual_hashes(settings.pdq.min_quality)
        grouped = group_near_duplicates(hashes, settings.pdq.group_distance)
        self._number: dict[int, int] = {}  # group key -> number
        self._representatives: set[int] = set()
        self._key = grouped
        for row in journal.ranked(settings.threshold) if grouped else ():
            key = grouped.get(row.seq)
            if key is not None and key not in self._number:
                self._number[key] = len(self._number) + 1
                self._representatives.add(row.seq)

    @property
    def count(self) -> int:
        return len(self._number)

    @property
    def files(self) -> int:
        return len(self._key)

    def of(self, row: JournalRow) -> tuple[int | None, bool | None]:
        """(group number, whether the file represents its group); (None, None) outside any group."""
        key = self._key.get(row.seq)
        if key is None:
            return None, None
        return self._number[key], row.seq in self._representatives


def summarize(
    journal: Journal, settings: ClassifySettings, model: TriageModel, groups: NearDuplicateGroups
) -> TriageSummary:
    counts = journal.counts()
    return TriageSummary(
        files_seen=sum(counts.values()),
        known=counts.get(KNOWN, 0),
        near_known=journal.count_near_known(),
        near_known_set_aside=settings.pdq.near_known == "set_aside",
        classified=counts.get(CLASSIFIED, 0),
        videos=journal.count_kind(CLASSIFIED, VIDEO),
        frames_scored=journal.count_frames_scored(),
        unreadable=counts.get(UNREADABLE, 0),
        refused=counts.get(REFUSED, 0),
        above_threshold=journal.count_at_or_above(settings.threshold),
        threshold=settings.threshold,
        near_duplicate_groups=groups.count,
        files_in_groups=groups.files,
        model=model.name,
        model_version=model.version,
        out=settings.out,
        source=settings.source,
        source_root=settings.source_root,
        model_sha256=model.weights_sha256,
        tool=code_fingerprint(),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def write_reports(journal: Journal, settings: ClassifySettings, model: TriageModel, case_id: str) -> TriageSummary:
    """Write every output into `settings.out` and return the summary."""
    out = Path(settings.out)
    groups = NearDuplicateGroups(journal, settings)
    summary = summarize(journal, settings, model, groups)
    rows = _Rows(journal, settings.threshold, CategoryRules(settings.category_thresholds), groups)
    _atomic_text(out / SUMMARY_FILE, json.dumps(summary.record(), indent=2))
    _write_csv(out / CSV_FILE, rows)
    _write_json(out / JSON_FILE, rows, summary)
    write_vics_export(
        out / VICS_FILE,
        _vics_entries(rows, model),
        profile=settings.vics_profile,
        case_id=case_id,
        case_number=settings.case_number,
        source_application="fedtriage",
    )
    return summary


@dataclass(frozen=True)
class _Rows:
    """The ranked files with what every report says of them."""

    journal: Journal
    threshold: float
    rules: CategoryRules
    groups: NearDuplicateGroups

    def __iter__(self) -> Iterator[tuple[int, JournalRow, dict[str, object]]]:
        for rank, row in enumerate(self.journal.ranked(self.threshold), start=1):
            yield rank, row, self._record(rank, row)

    def _record(self, rank: int, row: JournalRow) -> dict[str, object]:
        """One file as the CSV and JSON give it; `media_id` is the one the VICS export gives it too."""
        group, representative = self.groups.of(row)
        video = row.kind == VIDEO
        return {
            "rank": rank,
            "relative_path": row.reported_path,
            "status": row.status,
            "score": None if row.score is None else round(row.score, 6),
            "predicted_class": row.predicted,
            "md5": row.md5,
            "sha1": row.sha1,
            "size": row.size,
            "media_id": media_id(row),
            "reason": row.reason,
            "category": self.rules.category(row.score),
            "kind": row.kind,
            "best_frame_time": None if row.best_time is None else round(row.best_time, 3),
            "frames": row.frames if video and row.frames else None,
            "frames_at_or_above": row.frames_at_or_above if video and row.score is not None else None,
            "near_known": row.near_known,
            "near_known_pdq": row.near_known_pdq,
            "near_known_time": None if row.near_known_time is None else round(row.near_known_time, 3),
            "group": group,
            "representative": representative,
            "pdq": row.pdq,
        }


def _write_csv(path: Path, rows: _Rows) -> None:
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=_COLUMNS)
        writer.writeheader()
        for _, _, record in rows:
            writer.writerow({key: _csv_value(value) for key, value in record.items()})
    os.replace(partial, path)


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _write_json(path: Path, rows: _Rows, summary: TriageSummary) -> None:
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as stream:
        stream.write('{"summary": ' + json.dumps(summary.record()) + ',\n "files": [')
        for rank, _, record in rows:
            stream.write(("\n  " if rank == 1 else ",\n  ") + json.dumps(record))
        stream.write("\n ]\n}\n")
    os.replace(partial, path)


# What the VICS export says of a file beyond its identity, as MediaMetadata (name -> report field).
_VICS_METADATA = (
    ("score", "score"), ("predicted_class", "predicted_class"), ("best_frame_time", "best_frame_time"),
    ("frames_sampled", "frames"), ("frames_at_or_above", "frames_at_or_above"), ("near_known", "near_known"),
    ("near_known_pdq", "near_known_pdq"), ("near_known_time", "near_known_time"), ("group", "group"),
    ("group_representative", "representative"), ("pdq", "pdq"),
)


def _vics_entries(rows: _Rows, model: TriageModel) -> Iterator[VicsExportEntry]:
    """Every file with hashes; scores and the rest as MediaMetadata; Category only where thresholds map it."""
    for _, row, record in rows:
        if row.md5 is None or row.sha1 is None or row.size is None:
            continue
        metadata = [
            (_METADATA_PREFIX + "status", row.status),
            (_METADATA_PREFIX + "model", model.name),
            (_METADATA_PREFIX + "model_version", model.version),
        ]
        if row.kind is not None:
            metadata.append((_METADATA_PREFIX + "kind", row.kind))
        for name, field in _VICS_METADATA:
            value = record[field]
            if value is not None:
                metadata.append((_METADATA_PREFIX + name, _vics_value(value)))
        identity = media_id(row)
        assert identity is not None, "a hashed file always has a MediaID"
        yield VicsExportEntry(
            media_id=identity,
            md5=row.md5,
            sha1=row.sha1,
            size=row.size,
            relative_path=row.reported_path,
            metadata=tuple(metadata),
            category=record["category"],  # type: ignore[arg-type]
        )


def _vics_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def _atomic_text(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
