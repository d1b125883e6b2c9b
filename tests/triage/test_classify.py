"""`fedtriage classify` end to end on generated media mixed with everything a seized device holds."""

import csv
import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
import torch
from PIL import Image

from cli.app import main
from fedtriage.errors import ConfigError
from fl_client.holdings import write_synthetic_holdings
from fl_protocol.run_config import load_settings
from fl_server.checkpoint import Checkpoint, save_checkpoint
from media.walk import SkippedFile, walk_media
from models import ModelSpec, save_model_file
from tests.support.project import VICS_EXPORT_SCHEMA
from triage.classify import classify_media
from triage.journal import JOURNAL_FILE, Journal
from triage.known_hashes import load_known_hashes
from triage.model_source import TriageModel, load_triage_model
from triage.pipeline import PipelineLimits, Scorer, classify_pending
from triage.reader import PerceptualRules
from triage.settings import load_classify_settings, settings_fingerprint

SCHEMA = VICS_EXPORT_SCHEMA
CLASSES = ["disc", "square"]


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """Generated images in nested folders, plus what a real device also holds."""
    root = tmp_path / "device"
    write_synthetic_holdings(root / "DCIM", CLASSES, 12, 40, "mixed", seed=3)
    (root / "DCIM" / ".fedtriage-synthetic.json").unlink(missing_ok=True)
    (root / "Downloads").mkdir()
    Image.new("RGB", (30, 30), (200, 20, 20)).save(root / "Downloads" / ".hidden_picture.png")
    good = (root / "DCIM" / "disc" / "disc_0.png").read_bytes()
    (root / "Downloads" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "Downloads" / "notes.jpg").write_text("not an image at all")
    (root / "Downloads" / "empty.png").write_bytes(b"")
    (root / "Downloads" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(64))
    Image.new("1", (20_000, 20_000)).save(root / "Downloads" / "bomb.png")  # 400 megapixels declared
    outside = tmp_path / "outside.png"
    Image.new("RGB", (30, 30)).save(outside)
    os.symlink(outside, root / "Downloads" / "link_out.png")
    return root


def triage_settings(evidence: Path, model: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return load_classify_settings([f"source={evidence}", f"model={model}", f"out={out}", "progress=false", *extra])


def known_list(tmp_path: Path, evidence: Path) -> tuple[Path, Path]:
    """One text list (MD5 of square_0) and one VICS hash set (SHA-1 of square_1)."""
    text = tmp_path / "known.md5"
    md5 = hashlib.md5((evidence / "DCIM/square/square_0.png").read_bytes()).hexdigest().upper()
    text.write_text(f"# known material\n{md5},square_0\n")
    vics = tmp_path / "hashset.json"
    sha1 = hashlib.sha1((evidence / "DCIM/square/square_1.jpg").read_bytes()).hexdigest().upper()
    vics.write_text(json.dumps({
        "@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Media",
        "value": [{"MediaID": 1, "Category": 0, "SHA1": sha1}],
    }))
    return text, vics


def discover_all(journal: Journal, evidence: Path) -> None:
    """What `fedtriage classify` records before reading any file."""
    for entry in walk_media(evidence):
        if isinstance(entry, SkippedFile):
            journal.discover(entry.path, None, refusal=entry.reason)
        else:
            journal.discover(entry, None)
    journal.finish_discovery()


def discovered(settings, root: Path) -> tuple[Journal, TriageModel]:  # type: ignore[no-untyped-def]
    """A run's journal with every file of `root` discovered and none read yet, and the run's model."""
    model = load_triage_model(settings.model, None, None)
    journal = Journal(Path(settings.out), settings_fingerprint(settings, model.name, model.version))
    discover_all(journal, root)
    return journal, model


def classify_discovered(settings, journal: Journal, root: Path, model: TriageModel,  # type: ignore[no-untyped-def]
                        on_done: Callable[[int], None]) -> None:
    """The pipeline alone on a discovered journal, with one reader, calling `on_done` after each stored group."""
    limits = PipelineLimits(batch_size=settings.batch_size, decode_workers=1, max_image_pixels=89_478_485,
                            max_file_bytes=2**30, file_time_limit_s=60)
    known = load_known_hashes([])
    perceptual = PerceptualRules(known.pdq_index(31), set_aside_near_known=False, min_quality=50)
    classify_pending(journal, root, known, Scorer(model, (1,)), limits,
                     settings.video.limits(89_478_485, frame_side=512), perceptual, on_done)


def rows(out: Path) -> list[dict[str, str]]:
    with (out / "triage.csv").open() as stream:
        return list(csv.DictReader(stream))


def test_triage_ranks_new_images_and_lists_everything_else_with_a_reason(
    tmp_path: Path, evidence: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, vics = known_list(tmp_path, evidence)
    out = tmp_path / "report"
    code = main(["classify", f"source={evidence}", f"model={model_file}", f"out={out}",
                 f"known_hashes=[{text},{vics}]", "progress=false"])
    assert code == 0
    table = rows(out)
    by_path = {row["relative_path"]: row for row in table}
    assert by_path["DCIM/square/square_0.png"]["status"] == "known"
    assert by_path["DCIM/square/square_1.jpg"]["status"] == "known"
    assert by_path["Downloads/truncated.png"] == {**by_path["Downloads/truncated.png"], "status": "unreadable",
                                                  "reason": "truncated or corrupt image"}
    assert by_path["Downloads/notes.jpg"]["reason"] == "not an image"
    assert by_path["Downloads/empty.png"]["reason"] == "empty file"
    assert by_path["Downloads/bomb.png"]["reason"] == "image too large (decompression bomb guard)"
    assert by_path["Downloads/clip.mp4"] == {**by_path["Downloads/clip.mp4"], "status": "unreadable", "kind": "video",
                                             "reason": "corrupt or unknown container"}
    assert by_path["Downloads/link_out.png"]["status"] == "refused"
    assert by_path["Downloads/.hidden_picture.png"]["status"] == "classified"  # hidden files are evidence too
    classified = [row for row in table if row["status"] == "classified"]
    assert len(classified) == 2 * 12 - 2 + 1
    scores = [float(row["score"]) for row in classified]
    assert scores == sorted(scores, reverse=True)
    assert table[: len(classified)] == classified  # classified files lead the ranking
    assert [int(row["rank"]) for row in table] == list(range(1, len(table) + 1))
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["files_seen"], summary["known"], summary["classified"]) == (len(table), 2, len(classified))
    assert (summary["unreadable"], summary["videos"], summary["refused"]) == (5, 0, 1)
    printed = capsys.readouterr().out
    assert "known (by hash):   2" in printed and "classified:" in printed


def test_no_output_holds_image_content(tmp_path: Path, evidence: Path, model_file: Path) -> None:
    out = tmp_path / "report"
    classify_media(triage_settings(evidence, model_file, out))
    image_signatures = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8")
    for name in ("triage.csv", "triage.json", "triage_vics.json", "summary.json"):
        data = (out / name).read_bytes()
        assert not any(signature in data for signature in image_signatures)
        assert data.isascii()  # text: paths, hashes, numbers


def test_the_vics_export_follows_the_schema_and_names_the_model(
    tmp_path: Path, evidence: Path, model_file: Path
) -> None:
    out = tmp_path / "report"
    every_score_to_category_2 = "category_thresholds=[{min_score:0.0,category:2}]"
    settings = triage_settings(
        evidence, model_file, out, "vics_profile=US", "case_number=CASE-7", every_score_to_category_2
    )
    classify_media(settings)
    export = json.loads((out / "triage_vics.json").read_text())
    jsonschema.validate(export, SCHEMA)
    assert export["@odata.context"].endswith("/2.0.xml/US/$metadata#Cases")
    media = export["value"][0]["Media"]
    scored = [m for m in media if any(p["PropertyName"] == "fedtriage.score" for p in m["MediaMetadata"])]
    assert scored and all(m["Category"] == 2 for m in scored)  # every score >= 0.0 maps to 2
    unscored = [m for m in media if m not in scored]
    assert unscored and all("Category" not in m for m in unscored)
    names = {p["PropertyName"]: p["PropertyValue"] for p in scored[0]["MediaMetadata"]}
    assert names["fedtriage.model"] == "final_model.pt" and names["fedtriage.model_version"].startswith("sha256:")


def test_category_stays_unset_unless_thresholds_are_mapped(tmp_path: Path, evidence: Path, model_file: Path) -> None:
    out = tmp_path / "report"
    classify_media(triage_settings(evidence, model_file, out))
    export = json.loads((out / "triage_vics.json").read_text())
    assert all("Category" not in media for media in export["value"][0]["Media"])


def test_every_entry_of_a_vics_source_is_reported_even_without_a_usable_path(
    tmp_path: Path, evidence: Path, model_file: Path
) -> None:
    media = [
        {"MediaID": 1, "RelativeFilePath": "DCIM\\disc\\disc_0.png"},
        {"MediaID": 2, "RelativeFilePath": "DCIM/disc/disc_0.png"},  # the same file again
        {"MediaID": 3},
        {"MediaID": 4},
        {"MediaID": 5, "RelativeFilePath": "../outside.png"},
        {"MediaID": "six"},
    ]
    case = evidence / "case.json"
    case.write_text(json.dumps({"value": [{"CaseID": "c", "Media": media}]}))
    out = tmp_path / "report"
    summary = classify_media(triage_settings(case, model_file, out))
    assert (summary.files_seen, summary.classified, summary.refused) == (6, 1, 5)
    reasons = {row["relative_path"]: (row["media_id"], row["reason"]) for row in rows(out)}
    assert reasons == {
        "DCIM\\disc\\disc_0.png": ("1", ""),  # as the case wrote it
        "<entry 1>": ("2", "same RelativeFilePath as an earlier entry"),
        "<entry 2>": ("3", "no RelativeFilePath"),
        "<entry 3>": ("4", "no RelativeFilePath"),
        "../outside.png": ("5", "path leaves the root"),
        "<entry 5>": ("", "MediaID is not an integer"),
    }


def test_a_link_swapped_to_point_outside_after_discovery_is_not_read(
    tmp_path: Path, evidence: Path, model_file: Path
) -> None:
    out = tmp_path / "report"
    settings = triage_settings(evidence, model_file, out)
    journal, model = discovered(settings, evidence)
    journal.close()  # as if interrupted before any file was read; then the tree changes
    target = evidence / "DCIM" / "disc" / "disc_0.png"
    target.unlink()
    target.symlink_to(tmp_path / "outside.png")

    classify_media(settings)  # the resumed run does not walk again, but checks at read time
    by_path = {row["relative_path"]: row for row in rows(out)}
    assert by_path["DCIM/disc/disc_0.png"]["status"] == "refused"
    assert by_path["DCIM/disc/disc_0.png"]["md5"] == ""  # never read


def test_a_fifo_swapped_in_after_discovery_is_listed_and_does_not_hang_the_run(
    tmp_path: Path, evidence: Path, model_file: Path
) -> None:
    out = tmp_path / "report"
    settings = triage_settings(evidence, model_file, out)
    journal, model = discovered(settings, evidence)
    journal.close()
    target = evidence / "DCIM" / "disc" / "disc_0.png"
    target.unlink()
    os.mkfifo(target)  # opening it for reading would block until a writer came

    classify_media(settings)
    by_path = {row["relative_path"]: row for row in rows(out)}
    assert (by_path["DCIM/disc/disc_0.png"]["status"], by_path["DCIM/disc/disc_0.png"]["reason"]) == (
        "unreadable", "not a regular file")
    assert by_path["DCIM/disc/disc_0.png"]["md5"] == ""


def test_resuming_with_another_source_root_is_refused(tmp_path: Path, evidence: Path, model_file: Path) -> None:
    case = evidence / "case.json"
    case.write_text(json.dumps([{"MediaID": 1, "RelativeFilePath": "DCIM/disc/disc_0.png"}]))
    out = tmp_path / "report"
    classify_media(triage_settings(case, model_file, out))
    code = main(["classify", f"source={case}", f"source_root={tmp_path}", f"model={model_file}", f"out={out}",
                 "progress=false"])
    assert code == 2


class Interrupted(Exception):
    """Stands in for Ctrl-C or a crash after the first stored group of outcomes."""


def test_an_interrupted_run_resumes_without_classifying_finished_files_again(
    tmp_path: Path, evidence: Path, model_file: Path
) -> None:
    out = tmp_path / "report"
    settings = triage_settings(evidence, model_file, out, "batch_size=4")
    journal, model = discovered(settings, evidence)

    def stop_after_first_group(count: int) -> None:
        raise Interrupted

    with pytest.raises(Interrupted):
        classify_discovered(settings, journal, evidence, model, stop_after_first_group)
    journal.close()
    stored_before = _stored_by_attempt(out)
    assert list(stored_before) == [1] and stored_before[1] >= 4  # the first group was stored

    classify_media(settings)  # the resumed run
    stored = _stored_by_attempt(out)
    assert stored[1] == stored_before[1]  # the first run's outcomes were kept, not redone
    assert stored[1] + stored[2] == len(rows(out)) - 1  # the rest, once: every file but the refused link
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM media WHERE status = 'pending'").fetchone()[0] == 0


def test_a_run_an_earlier_version_left_unfinished_resumes_after_the_upgrade(
    tmp_path: Path, evidence: Path, model_file: Path
) -> None:
    out = tmp_path / "report"
    settings = triage_settings(evidence, model_file, out)
    journal, model = discovered(settings, evidence)
    journal.close()
    with sqlite3.connect(out / JOURNAL_FILE) as db:  # as the version before `written_path` wrote it
        db.execute("ALTER TABLE media DROP COLUMN written_path")

    summary = classify_media(settings)

    assert summary.classified == len([row for row in rows(out) if row["status"] == "classified"]) > 0
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM media WHERE status = 'pending'").fetchone()[0] == 0


def _stored_by_attempt(out: Path) -> dict[int, int]:
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        return dict(db.execute("SELECT attempt, COUNT(*) FROM media WHERE attempt IS NOT NULL GROUP BY attempt"))


def test_ctrl_c_stops_the_command_cleanly_and_the_same_command_resumes(tmp_path: Path, model_file: Path) -> None:
    """A real interrupt, as a terminal sends it: to the command and its reader processes."""
    device = tmp_path / "device"
    write_synthetic_holdings(device, CLASSES, 3000, 24, "png", seed=5)
    out = tmp_path / "report"
    command = [str(Path(sys.executable).with_name("fedtriage")), "classify", f"source={device}",
               f"model={model_file}", f"out={out}"]
    started = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    assert started.stderr is not None
    progress = ""
    while not re.search(r"triage [1-9]\d*/6000 files", progress):  # its first batch is journalled
        character = started.stderr.read(1)
        assert character, f"classify ended before its first batch was done: {progress}"
        progress += character
    os.killpg(started.pid, signal.SIGINT)
    stdout, stderr = started.communicate(timeout=120)
    stderr = progress + stderr
    assert started.returncode == 130, stdout + stderr
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr, stderr
    done_before = _classified_so_far(out)
    assert 0 < done_before < 6000, stdout + stderr

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "classified:        6000" in resumed.stdout
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        attempts = dict(db.execute("SELECT attempt, COUNT(*) FROM media GROUP BY attempt"))
    assert attempts == {1: done_before, 2: 6000 - done_before}


def _classified_so_far(out: Path) -> int:
    if not (out / JOURNAL_FILE).exists():
        return 0
    try:
        with sqlite3.connect(out / JOURNAL_FILE, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM media WHERE status = 'classified'").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is being created
        return 0


def test_resuming_with_another_model_is_refused(tmp_path: Path, evidence: Path, model_file: Path) -> None:
    out = tmp_path / "report"
    classify_media(triage_settings(evidence, model_file, out))
    spec = ModelSpec.from_settings(
        load_settings(["holdings=synthetic", "holdings.classes=[disc,square]", "holdings.image_size=16"])
    )
    torch.manual_seed(1)
    other = save_model_file(tmp_path / "other.pt", spec.build(), spec)
    code = main(["classify", f"source={evidence}", f"model={other}", f"out={out}", "progress=false"])
    assert code == 2


def test_a_round_checkpoint_scores_like_the_model_file_it_holds(
    tmp_path: Path, evidence: Path, model_file: Path
) -> None:
    saved = torch.load(model_file, weights_only=True)
    checkpoint = save_checkpoint(
        tmp_path / "checkpoints",
        Checkpoint(round=3, model_state=saved["model_state"], strategy_state={}, history=[],
                   model_spec=saved["model_spec"]),
        keep_last=1,
    )
    from_file = classify_media(triage_settings(evidence, model_file, tmp_path / "a"))
    from_checkpoint = classify_media(triage_settings(evidence, checkpoint, tmp_path / "b"))
    assert from_checkpoint.classified == from_file.classified > 0
    scores = [{row["relative_path"]: row["score"] for row in rows(tmp_path / out)} for out in ("a", "b")]
    assert scores[0] == scores[1]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["model=/nowhere/model.pt"], "model"),
        (["relevant_classes=[cat]"], "relevant_classes"),
        (["threshold=1.5"], "threshold"),
        (["known_hashes=[/nowhere/list.md5]"], "list.md5"),
        (["relevant_classes=7"], "relevant_classes: must be a list, e.g. relevant_classes=[a,b]"),
        (["thresold=0.5"], "thresold: no such setting; did you mean threshold?"),
    ],
)
def test_bad_settings_are_one_clear_error(
    tmp_path: Path, evidence: Path, model_file: Path, overrides: list[str], named: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = {"source": str(evidence), "model": str(model_file), "out": str(tmp_path / "out"), "progress": "false"}
    for override in overrides:
        key, value = override.split("=", 1)
        base[key] = value
    code = main(["classify", *(f"{key}={value}" for key, value in base.items())])
    assert code == 2
    assert named in capsys.readouterr().err


def test_a_many_class_model_needs_the_relevant_classes_named(tmp_path: Path, evidence: Path) -> None:
    spec = ModelSpec.from_settings(load_settings(["holdings=synthetic", "holdings.image_size=16"]))  # 4 classes
    model = save_model_file(tmp_path / "four.pt", spec.build(), spec)
    with pytest.raises(ConfigError, match="relevant_classes"):
        classify_media(triage_settings(evidence, model, tmp_path / "o"))


def test_the_console_script_is_installed_and_reports_a_missing_source(tmp_path: Path) -> None:
    fedtriage = Path(sys.executable).with_name("fedtriage")
    completed = subprocess.run(
        [str(fedtriage), "classify", f"source={tmp_path / 'nowhere'}", "model=m.pt", f"out={tmp_path / 'o'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    assert "fedtriage: error: source:" in completed.stderr
