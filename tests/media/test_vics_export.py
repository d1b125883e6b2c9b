"""Triage's VICS export: schema-valid, uppercase hashes as tools write them, streamed, atomic."""

import hashlib
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from media.vics import VICS_CONTEXT, VicsExportEntry, VicsMedia, read_vics_media, write_vics_export
from tests.support.project import VICS_EXPORT_SCHEMA

SCHEMA = VICS_EXPORT_SCHEMA


def _entry(number: int, category: int | None = None, relative_path: str | None = None) -> VicsExportEntry:
    content = f"made-up file {number}".encode()
    return VicsExportEntry(
        media_id=number,
        md5=hashlib.md5(content).hexdigest(),
        sha1=hashlib.sha1(content).hexdigest(),
        size=len(content),
        relative_path=relative_path or f"Users/examiner/Pictures/{number:07d}.jpg",
        metadata=(("fedtriage:score", f"{number % 100 / 100:.2f}"), ("fedtriage:model", "cnn-round-12")),
        category=category,
    )


def _export(path: Path, entries: list[VicsExportEntry], **case: str | None) -> dict:
    count = write_vics_export(
        path,
        entries,
        profile=str(case.get("profile", "Default")),
        case_id="3f2c1b7e-0000-4000-8000-000000000001",
        case_number=case.get("case_number", "T-2024-001"),
        source_application="fedtriage 0.1.0",
    )
    assert count == len(entries)
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_export_validates_against_the_schema(tmp_path: Path) -> None:
    document = _export(tmp_path / "export.json", [_entry(1), _entry(2, category=3), _entry(3, category=0)])

    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert document["@odata.context"] == VICS_CONTEXT.format(profile="Default")
    (case,) = document["value"]
    assert case["CaseID"] == "3f2c1b7e-0000-4000-8000-000000000001"
    assert case["CaseNumber"] == "T-2024-001"
    assert case["SourceApplicationName"] == "fedtriage 0.1.0"
    assert [media["MediaID"] for media in case["Media"]] == [1, 2, 3]


def test_category_is_written_only_when_set(tmp_path: Path) -> None:
    document = _export(tmp_path / "export.json", [_entry(1), _entry(2, category=3), _entry(3, category=0)])

    media = document["value"][0]["Media"]
    assert "Category" not in media[0]
    assert media[1]["Category"] == 3
    assert media[2]["Category"] == 0


def test_hashes_are_uppercase_and_the_metadata_is_name_value_pairs(tmp_path: Path) -> None:
    entry = _entry(5)
    document = _export(tmp_path / "export.json", [entry])

    (media,) = document["value"][0]["Media"]
    assert media["MD5"] == entry.md5.upper() and media["SHA1"] == entry.sha1.upper()
    assert media["MediaSize"] == entry.size
    assert media["RelativeFilePath"] == entry.relative_path
    assert media["MediaMetadata"] == [
        {"PropertyName": "fedtriage:score", "PropertyValue": "0.05"},
        {"PropertyName": "fedtriage:model", "PropertyValue": "cnn-round-12"},
    ]


def test_a_case_without_number_and_without_media_still_validates(tmp_path: Path) -> None:
    document = _export(tmp_path / "export.json", [], case_number=None, profile="UK")

    jsonschema.validate(document, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert "CaseNumber" not in document["value"][0]
    assert document["value"][0]["Media"] == []
    assert "/UK/" in document["@odata.context"]


def test_the_vics_reader_reads_the_export_back(tmp_path: Path) -> None:
    entries = [_entry(1, category=2), _entry(2)]
    _export(tmp_path / "export.json", entries)

    assert list(read_vics_media(tmp_path / "export.json")) == [
        VicsMedia(entry.media_id, entry.category, entry.md5, entry.sha1, entry.size, entry.relative_path, None)
        for entry in entries
    ]


def test_the_schema_rejects_what_the_export_must_never_contain() -> None:
    good = {
        "MediaID": 1,
        "MD5": "A" * 32,
        "SHA1": "B" * 40,
        "MediaSize": 3,
        "RelativeFilePath": "a/b.jpg",
        "MediaMetadata": [],
    }

    def document(media: dict) -> dict:
        return {
            "@odata.context": VICS_CONTEXT.format(profile="US"),
            "value": [{"CaseID": "c", "SourceApplicationName": "s", "Media": [media]}],
        }

    jsonschema.validate(document(good), SCHEMA)
    for bad in (
        {**good, "MD5": "a" * 32},
        {**good, "SHA1": "B" * 39},
        {**good, "RelativeFilePath": "/etc/x.jpg"},
        {**good, "RelativeFilePath": "C:\\x.jpg"},
        {**good, "Category": -1},
        {**good, "IsPrecategorized": True},
        {**good, "MediaMetadata": [{"PropertyName": "n", "PropertyValue": 1}]},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(document(bad), SCHEMA)


def test_writing_200k_entries_streams_in_bounded_memory(tmp_path: Path) -> None:
    total = 200_000
    template = _entry(0)

    def entries() -> Iterator[VicsExportEntry]:
        for number in range(total):
            yield VicsExportEntry(
                number,
                template.md5,
                template.sha1,
                number,
                template.relative_path,
                template.metadata,
                number % 4 or None,
            )

    path = tmp_path / "large.json"
    tracemalloc.start()
    try:
        count = write_vics_export(path, entries(), "Default", "case", None, "fedtriage")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == total
    assert path.stat().st_size > 40_000_000  # far more than was ever held at once
    assert peak < 2_000_000
    with path.open("rb") as stream:
        lines = sum(1 for _ in stream)
        stream.seek(-4096, 2)
        tail = stream.read().splitlines()
    assert lines == total + 2  # header, one line per media object, footer
    assert json.loads(tail[-2])["MediaID"] == total - 1
    assert tail[-1] == b"]}]}"


def test_the_write_is_atomic_and_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text("previous export")

    _export(path, [_entry(1)])

    assert sorted(child.name for child in tmp_path.iterdir()) == ["export.json"]


def test_a_bad_entry_mid_stream_leaves_the_previous_export_and_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text("previous export")
    bad = VicsExportEntry(media_id=2, md5="xyz", sha1="0" * 40, size=1, relative_path="a.jpg", metadata=())

    with pytest.raises(ValueError, match="MD5"):
        write_vics_export(path, [_entry(1), bad], "Default", "case", None, "fedtriage")

    assert path.read_text() == "previous export"
    assert sorted(child.name for child in tmp_path.iterdir()) == ["export.json"]


@pytest.mark.parametrize("relative_path", ["/abs/a.jpg", "\\a.jpg", "C:/a.jpg", "d:a.jpg"])
def test_an_absolute_relative_path_is_refused(tmp_path: Path, relative_path: str) -> None:
    entry = _entry(1, relative_path=relative_path)

    with pytest.raises(ValueError, match="RelativeFilePath"):
        write_vics_export(tmp_path / "export.json", [entry], "Default", "case", None, "fedtriage")

    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("profile", ["", "US/../x", "U S", "Default$metadata", "Ünï"])
def test_a_bad_profile_is_rejected(tmp_path: Path, profile: str) -> None:
    with pytest.raises(ValueError, match="profile"):
        write_vics_export(tmp_path / "export.json", [_entry(1)], profile, "case", None, "fedtriage")

    assert list(tmp_path.iterdir()) == []
