"""Triage of a device that mixes images, videos and edited copies of known material.

Videos are scored by their sampled frames; copies of listed pictures that were resized,
re-encoded or lightly cropped are caught by their PDQ hashes; near-duplicates on the device
share a group; a VICS case can list all of it. Everything is generated: shapes, gradients.
"""

import csv
import json
import os
import sqlite3
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from cli.app import main
from media.video_writer import write_video as write_scenes_video
from tests.support.pictures import as_jpeg, cropped, textured_picture
from tests.support.videos import absurd_dimensions, corrupt_header, scenes_of, truncate, write_video
from triage.journal import JOURNAL_FILE
from triage.known_hashes import load_known_hashes


def write_scenes(frames: list[np.ndarray], path: Path) -> None:
    """Frames at 10 per second, a key frame every 50 (every 5 s), as a camera writes them."""
    write_scenes_video(path, frames, 10, key_frame_interval=50)

CLASSES = ["disc", "square"]


@pytest.fixture
def device(tmp_path: Path) -> Path:
    """Listed pictures' edited copies, unrelated pictures, a video of four scenes and broken videos."""
    root = tmp_path / "device"
    for folder in ("listed", "copies", "other", "Movies"):
        (root / folder).mkdir(parents=True)
    for seed in range(3):
        textured_picture(seed).save(root / "listed" / f"listed_{seed}.png")
    textured_picture(0).resize((160, 120), Image.Resampling.LANCZOS).save(root / "copies" / "resized.png")
    as_jpeg(textured_picture(1), 70).save(root / "copies" / "reencoded.jpg", quality=95)
    cropped(textured_picture(2), 0.01).save(root / "copies" / "cropped.png")
    for seed in range(10, 14):
        textured_picture(seed).save(root / "other" / f"other_{seed}.png")
    write_video(root / "Movies" / "scenes.mp4", scenes_of(12, 12, 12, 12))  # cuts at 1, 2 and 3 s
    write_video(root / "Movies" / "long.mp4", scenes_of(24, 24, 24))
    truncate(root / "Movies" / "long.mp4", 0.5).rename(root / "Movies" / "truncated.mp4")
    corrupt_header(root / "Movies" / "scenes.mp4").rename(root / "Movies" / "corrupt.mp4")
    absurd_dimensions(root / "Movies" / "absurd.mkv")
    (root / "Movies" / "long.mp4").unlink()
    return root


def hash_list(tmp_path: Path, files: list[Path], capsys: pytest.CaptureFixture[str]) -> Path:
    """A known-material list as `fedtriage hash` prints it."""
    capsys.readouterr()
    assert main(["hash", *map(str, files)]) == 0
    listed = tmp_path / "known.txt"
    listed.write_text(capsys.readouterr().out, encoding="utf-8")
    return listed


def classify(device: Path, model_file: Path, out: Path, *extra: str) -> dict[str, dict[str, str]]:
    assert main(["classify", f"source={device}", f"model={model_file}", f"out={out}", "progress=false",
                 "relevant_classes=[square]", *extra]) == 0
    with (out / "triage.csv").open(encoding="utf-8") as stream:
        return {row["relative_path"]: row for row in csv.DictReader(stream)}


def test_hash_prints_md5_sha1_and_pdq_lines_a_list_takes(tmp_path: Path, device: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    listed = hash_list(tmp_path, [device / "listed" / "listed_0.png", device / "Movies"], capsys)
    lines = [line for line in listed.read_text().splitlines() if not line.startswith("#")]
    firsts = [line.split()[0] for line in lines if line.endswith("listed_0.png")]
    assert [len(first) for first in firsts] == [32, 40, 68] and firsts[2].startswith("pdq:")
    # A frame per scene; flat generated scenes are too featureless to match: their lines are comments.
    scene_frames = [line for line in listed.read_text().splitlines() if "scenes.mp4  frame" in line]
    assert [line.split("frame ")[1][:7] for line in scene_frames] == ["0.000 s", "1.000 s", "2.000 s", "3.000 s"]
    assert all(line.startswith(("pdq:", "# pdq:")) for line in scene_frames)
    comments = listed.read_text()
    assert "corrupt.mp4: no further PDQ hash (corrupt or unknown container)" in comments
    assert "absurd.mkv: no further PDQ hash (video too large (declared dimensions))" in comments


def test_a_missing_file_to_hash_is_a_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash", str(tmp_path / "nowhere.png")]) == 2
    assert capsys.readouterr().err.strip().endswith("nowhere.png does not exist")


def test_edited_copies_of_listed_pictures_are_near_known_and_unrelated_ones_are_not(
    tmp_path: Path, device: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = hash_list(tmp_path, sorted((device / "listed").iterdir()), capsys)
    rows = classify(device, model_file, tmp_path / "out", f"known_hashes=[{listed}]")
    for name in ("listed/listed_0.png", "listed/listed_1.png", "listed/listed_2.png"):
        assert rows[name]["status"] == "known"
    for name in ("copies/resized.png", "copies/reencoded.jpg", "copies/cropped.png"):
        row = rows[name]
        assert row["status"] == "classified" and row["score"]  # scored anyway, by default
        assert 0 <= int(row["near_known"]) <= 31 and row["near_known_pdq"], name
    for seed in range(10, 14):
        assert rows[f"other/other_{seed}.png"]["near_known"] == ""
    assert "near-known (PDQ):  3 (scored)" in capsys.readouterr().out


def test_near_known_files_are_set_aside_unscored_when_the_user_says_so(
    tmp_path: Path, device: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = hash_list(tmp_path, sorted((device / "listed").iterdir()), capsys)
    rows = classify(device, model_file, tmp_path / "out", f"known_hashes=[{listed}]", "pdq.near_known=set_aside")
    for name in ("copies/resized.png", "copies/reencoded.jpg", "copies/cropped.png"):
        assert rows[name]["status"] == "near-known" and rows[name]["score"] == ""


def test_videos_are_scored_by_their_sampled_frames_and_broken_ones_listed_with_a_reason(
    tmp_path: Path, device: Path, model_file: Path
) -> None:
    out = tmp_path / "out"
    rows = classify(device, model_file, out, "threshold=0.0")
    video = rows["Movies/scenes.mp4"]
    assert (video["status"], video["kind"], video["frames"]) == ("classified", "video", "4")  # one per scene
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        frames = db.execute(
            "SELECT frames.time, frames.score FROM frames JOIN media USING (seq) WHERE relative_path = ?",
            ("Movies/scenes.mp4",),
        ).fetchall()
    assert [time for time, _ in frames] == [0.0, 1.0, 2.0, 3.0]  # the cuts
    best_time, best_score = max(frames, key=lambda frame: frame[1])
    assert float(video["best_frame_time"]) == best_time and float(video["score"]) == pytest.approx(best_score, 1e-5)
    assert video["frames_at_or_above"] == "4"  # threshold 0: every frame
    truncated = rows["Movies/truncated.mp4"]
    assert truncated["status"] == "classified" and truncated["reason"].startswith("truncated or corrupt video")
    assert rows["Movies/corrupt.mp4"]["reason"] == "corrupt or unknown container"
    assert rows["Movies/absurd.mkv"]["reason"] == "video too large (declared dimensions)"
    for name in ("Movies/corrupt.mp4", "Movies/absurd.mkv"):
        assert rows[name]["status"] == "unreadable" and rows[name]["md5"]
    vics = json.loads((out / "triage_vics.json").read_text())
    entry = next(media for media in vics["value"][0]["Media"] if media["RelativeFilePath"] == "Movies/scenes.mp4")
    metadata = {item["PropertyName"]: item["PropertyValue"] for item in entry["MediaMetadata"]}
    assert float(metadata["fedtriage.best_frame_time"]) == best_time
    assert float(metadata["fedtriage.score"]) == pytest.approx(best_score, abs=1e-6)
    assert metadata["fedtriage.kind"] == "video" and metadata["fedtriage.frames_sampled"] == "4"


def test_near_duplicates_on_the_device_share_a_group_with_one_representative(
    tmp_path: Path, device: Path, model_file: Path
) -> None:
    rows = classify(device, model_file, tmp_path / "out")
    groups: dict[str, list[dict[str, str]]] = {}
    for row in rows.values():
        if row["group"]:
            groups.setdefault(row["group"], []).append(row)
    members = sorted(sorted(row["relative_path"] for row in group) for group in groups.values())
    assert members == [["copies/cropped.png", "listed/listed_2.png"], ["copies/reencoded.jpg", "listed/listed_1.png"],
                       ["copies/resized.png", "listed/listed_0.png"]]
    for group in groups.values():
        representatives = [row for row in group if row["representative"] == "true"]
        assert len(representatives) == 1
        assert int(representatives[0]["rank"]) == min(int(row["rank"]) for row in group)  # the best-ranked
    assert not any(rows[f"other/other_{seed}.png"]["group"] for seed in range(10, 14))


def test_a_vics_case_mixing_pictures_copies_and_videos_is_triaged_entry_by_entry(
    tmp_path: Path, device: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = hash_list(tmp_path, sorted((device / "listed").iterdir()), capsys)
    paths = ["copies\\resized.png", "other\\other_10.png", "Movies\\scenes.mp4", "Movies\\corrupt.mp4"]
    case = device / "case.json"
    case.write_text(json.dumps({
        "@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Cases",
        "value": [{"CaseID": "c1", "Media": [{"MediaID": index + 1, "RelativeFilePath": path}
                                              for index, path in enumerate(paths)]}],
    }))
    out = tmp_path / "out"
    assert main(["classify", f"source={case}", f"model={model_file}", f"out={out}", "progress=false",
                 f"known_hashes=[{listed}]", "relevant_classes=[square]"]) == 0
    report = json.loads((out / "triage.json").read_text())
    by_path = {row["relative_path"]: row for row in report["files"]}
    assert set(by_path) == set(paths)
    assert by_path["copies\\resized.png"]["near_known"] is not None
    assert by_path["other\\other_10.png"]["near_known"] is None
    assert by_path["Movies\\scenes.mp4"]["kind"] == "video" and by_path["Movies\\scenes.mp4"]["frames"] == 4
    assert by_path["Movies\\corrupt.mp4"]["status"] == "unreadable"
    assert [by_path[path]["media_id"] for path in paths] == [1, 2, 3, 4]


def test_a_resumed_run_scores_only_the_videos_left_unfinished(tmp_path: Path, device: Path, model_file: Path) -> None:
    out = tmp_path / "out"
    classify(device, model_file, out)
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        frames_before = dict(db.execute("SELECT seq, COUNT(*) FROM frames GROUP BY seq"))
        # An interruption left one video unfinished: pending again (its frames rows stale).
        db.execute("UPDATE media SET status = 'pending' WHERE relative_path = 'Movies/scenes.mp4'")
    classify(device, model_file, out)
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        attempts = dict(db.execute("SELECT relative_path, attempt FROM media WHERE relative_path LIKE 'Movies/%'"))
        frames_after = dict(db.execute("SELECT seq, COUNT(*) FROM frames GROUP BY seq"))
    assert attempts.pop("Movies/scenes.mp4") == 2  # scored by the resumed run
    assert set(attempts.values()) == {1}  # every finished video kept from the first run
    assert frames_after == frames_before  # the rescored video's frames replaced, not added


def test_a_file_name_cannot_add_lines_to_a_list_made_by_hash(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "seized"
    folder.mkdir()
    planted_md5 = "0123456789abcdef0123456789abcdef"
    textured_picture(1).save(folder / f"x\n{planted_md5} y.png")
    (folder / os.fsdecode(b"name-\xff.png")).write_bytes(b"not a picture")
    listed = hash_list(tmp_path, [folder], capsys)
    text = listed.read_bytes().decode("utf-8")  # strict: the list is UTF-8 whatever the names
    assert f"x\\n{planted_md5} y.png" in text and "name-\\xff.png" in text
    known = load_known_hashes([listed])
    assert planted_md5 not in known.md5 and len(known.md5) == 2


def test_a_video_declaring_a_far_longer_duration_is_still_sampled_scene_by_scene(
    tmp_path: Path, model_file: Path
) -> None:
    device = tmp_path / "device"
    device.mkdir()
    rng = np.random.default_rng(0)
    scenes = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(6)]
    honest = tmp_path / "honest.mkv"
    write_scenes([scenes[index // 50] for index in range(300)], honest)  # 6 scenes of 5 s at 10 fps
    data = bytearray(honest.read_bytes())
    at = data.find(b"\x44\x89")  # Matroska Segment Info Duration (a float)
    size = data[at + 2] & 0x7F
    form = ">d" if size == 8 else ">f"
    (declared,) = struct.unpack(form, data[at + 3 : at + 3 + size])
    data[at + 3 : at + 3 + size] = struct.pack(form, declared * 2000)
    (device / "lying.mkv").write_bytes(bytes(data))
    rows = classify(device, model_file, tmp_path / "out")
    video = rows["lying.mkv"]
    # Every scene sampled, and the lie told: the last frame scanned is the key frame at 25 s.
    assert video["frames"] == "6" and video["reason"].startswith("declares 60000 s but ends at 25 s")


def test_frame_times_count_from_the_start_of_the_video(tmp_path: Path, model_file: Path) -> None:
    device = tmp_path / "device"
    device.mkdir()
    rng = np.random.default_rng(0)
    scenes = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    with av.open(str(device / "late.ts"), "w") as container:  # an MPEG-TS whose clock starts at 10 hours
        stream = container.add_stream("mpeg2video", rate=10)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for index in range(150):
            frame = av.VideoFrame.from_ndarray(scenes[index // 50], format="rgb24")
            frame.pts, frame.time_base = 36_000 * 10 + index, Fraction(1, 10)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = tmp_path / "out"
    classify(device, model_file, out)
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        times = [round(time, 1) for (time,) in db.execute("SELECT time FROM frames ORDER BY time")]
    assert times == [0.0, 5.0, 10.0]


def test_a_journal_an_earlier_version_started_is_refused_as_such_and_left_as_it_was(
    tmp_path: Path, device: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with sqlite3.connect(out / JOURNAL_FILE) as db:  # as the version before video triage left it
        db.execute("CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE media (seq INTEGER PRIMARY KEY, relative_path TEXT, status TEXT)")
        db.execute("INSERT INTO run VALUES ('fingerprint', ?)", (json.dumps({"source": str(device)}),))
    assert main(["classify", f"source={device}", f"model={model_file}", f"out={out}", "progress=false"]) == 2
    assert "an earlier fedtriage version started" in capsys.readouterr().err
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        assert [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")] == ["run", "media"]
        assert [row[1] for row in db.execute("PRAGMA table_info(media)")] == ["seq", "relative_path", "status"]


def test_a_video_showing_a_listed_picture_is_near_known_at_that_frames_time(
    tmp_path: Path, device: Path, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = hash_list(tmp_path, sorted((device / "listed").iterdir()), capsys)
    other, known = np.asarray(textured_picture(20)), np.asarray(textured_picture(0))
    write_scenes([other] * 20 + [known] * 20, device / "Movies" / "clip.mkv")  # the listed picture from 2 s
    rows = classify(device, model_file, tmp_path / "out", f"known_hashes=[{listed}]")
    clip = rows["Movies/clip.mkv"]
    assert clip["status"] == "classified" and int(clip["near_known"]) <= 31
    assert float(clip["near_known_time"]) == 2.0 and clip["best_frame_time"] in ("0.0", "2.0")
