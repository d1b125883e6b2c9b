"""The triage outputs, all written from the journal, ranked by score, never with image content.

CSV and JSON for people and scripts; a VICS 2.0 export for the investigators' forensic
tools, with the scores as MediaMetadata naming the model and its version. Each file
is streamed row by row, so writing a million rows needs no more memory than one.
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
from triage.settings import CategoryThreshold, ClassifySettings

CSV_FILE = "triage.csv"
JSON_FILE = "triage.json"
VICS_FILE = "triage_vics.json"
SUMMARY_FILE = "summary.json"

_COLUMNS = (
    "rank", "relative_path", "status", "score", "predicted_class", "md5", "sha1", "size", "media_id", "reason",
    "category",
)
_METADATA_PREFIX = "fedtriage."


@dataclass
class TriageSummary:
    """What a triage run saw and where its outputs are."""

    files_seen: int
    known: int
    classified: int
    unreadable: int
    videos: int
    refused: int
    above_threshold: int
    threshold: float
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
            f"classified:        {self.classified}",
            f"  score >= {self.threshold:g}:    {self.above_threshold}",
            f"unreadable:        {self.unreadable}",
            f"videos (not handled): {self.videos}",
            f"refused (links out of the root, special files, bad entries): {self.refused}",
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


def summarize(journal: Journal, settings: ClassifySettings, model: TriageModel) -> TriageSummary:
    counts = journal.counts()
    return TriageSummary(
        files_seen=sum(counts.values()),
        known=counts.get(KNOWN, 0),
        classified=counts.get(CLASSIFIED, 0),
        unreadable=counts.get(UNREADABLE, 0),
        videos=counts.get(VIDEO, 0),
        refused=counts.get(REFUSED, 0),
        above_threshold=journal.count_at_or_above(settings.threshold),
        threshold=settings.threshold,
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
    summary = summarize(journal, settings, model)
    rules = CategoryRules(settings.category_thresholds)
    _atomic_text(out / SUMMARY_FILE, json.dumps(summary.record(), indent=2))
    _write_csv(out / CSV_FILE, journal, rules)
    _write_json(out / JSON_FILE, journal, summary, rules)
    write_vics_export(
        out / VICS_FILE,
        _vics_entries(journal, rules, model),
        profile=settings.vics_profile,
        case_id=case_id,
        case_number=settings.case_number,
        source_application="fedtriage",
    )
    return summary


def _record(rank: int, row: JournalRow, rules: CategoryRules) -> dict[str, object]:
    """One file as the CSV and JSON give it; `media_id` is the one the VICS export gives it too."""
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
        "category": rules.category(row.score),
    }


def _write_csv(path: Path, journal: Journal, rules: CategoryRules) -> None:
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=_COLUMNS)
        writer.writeheader()
        for rank, row in enumerate(journal.ranked(), start=1):
            record = _record(rank, row, rules)
            writer.writerow({key: "" if value is None else value for key, value in record.items()})
    os.replace(partial, path)


def _write_json(path: Path, journal: Journal, summary: TriageSummary, rules: CategoryRules) -> None:
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as stream:
        stream.write('{"summary": ' + json.dumps(summary.record()) + ',\n "files": [')
        for rank, row in enumerate(journal.ranked(), start=1):
            stream.write(("\n  " if rank == 1 else ",\n  ") + json.dumps(_record(rank, row, rules)))
        stream.write("\n ]\n}\n")
    os.replace(partial, path)


def _vics_entries(journal: Journal, rules: CategoryRules, model: TriageModel) -> Iterator[VicsExportEntry]:
    """Every file with hashes; scores as MediaMetadata; Category only where thresholds map it."""
    for row in journal.ranked():
        if row.md5 is None or row.sha1 is None or row.size is None:
            continue
        metadata = [
            (_METADATA_PREFIX + "status", row.status),
            (_METADATA_PREFIX + "model", model.name),
            (_METADATA_PREFIX + "model_version", model.version),
        ]
        if row.score is not None:
            metadata += [
                (_METADATA_PREFIX + "score", f"{row.score:.6f}"),
                (_METADATA_PREFIX + "predicted_class", row.predicted or ""),
            ]
        identity = media_id(row)
        assert identity is not None, "a hashed file always has a MediaID"
        yield VicsExportEntry(
            media_id=identity,
            md5=row.md5,
            sha1=row.sha1,
            size=row.size,
            relative_path=row.reported_path,
            metadata=tuple(metadata),
            category=rules.category(row.score),
        )


def _atomic_text(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
