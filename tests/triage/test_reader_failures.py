"""A file that stops its reader process (a decoder crash, or no end to its decoding) costs
the run that file only: it is listed with the reason and the rest of the device is triaged."""

import multiprocessing
import os
import signal
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image

from fl_client.holdings import write_synthetic_holdings
from tests.triage.test_classify import CLASSES, classify_discovered, discovered, rows
from triage.classify import classify_media
from triage.journal import JOURNAL_FILE
from triage.settings import load_classify_settings

_SLOW_SIDE = 8000  # 64 megapixels (under max_image_pixels): seconds to inflate, fit and hash


def write_device(root: Path, per_class: int) -> Path:
    write_synthetic_holdings(root / "DCIM", CLASSES, per_class, 32, "mixed", seed=5)
    (root / "DCIM" / ".fedtriage-synthetic.json").unlink(missing_ok=True)
    return root


def test_a_file_taking_longer_than_the_time_limit_is_listed_and_the_others_are_triaged(
    tmp_path: Path, model_file: Path
) -> None:
    device = write_device(tmp_path / "device", 6)
    noise = np.random.default_rng(0).integers(0, 256, (_SLOW_SIDE, _SLOW_SIDE), dtype=np.uint8)
    Image.fromarray(noise).save(device / "DCIM" / "panorama.png", compress_level=0)
    out = tmp_path / "report"
    settings = load_classify_settings([f"source={device}", f"model={model_file}", f"out={out}", "progress=false",
                                       "file_time_limit_s=0.3", "batch_size=4"])

    summary = classify_media(settings)

    by_path = {row["relative_path"]: row for row in rows(out)}
    slow = by_path["DCIM/panorama.png"]
    assert (slow["status"], slow["reason"]) == (
        "unreadable", "reading took longer than file_time_limit_s (0.3 s); stopped")
    others = [row for path, row in by_path.items() if path != "DCIM/panorama.png"]
    assert len(others) == 12 and all(row["status"] == "classified" for row in others)
    assert summary.classified == 12

    classify_media(settings)  # resumed: the slow file is not read again, its outcome stands
    assert {row["relative_path"]: row["reason"] for row in rows(out)}["DCIM/panorama.png"] == slow["reason"]
    with sqlite3.connect(out / JOURNAL_FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM media WHERE status = 'pending'").fetchone()[0] == 0


def test_a_reader_killed_mid_run_loses_no_file(tmp_path: Path, model_file: Path) -> None:
    device = write_device(tmp_path / "device", 40)  # five chunks of files: some in flight at the kill
    out = tmp_path / "report"
    settings = load_classify_settings([f"source={device}", f"model={model_file}", f"out={out}", "progress=false",
                                       "batch_size=4"])
    journal, model = discovered(settings, device)
    killed: list[int] = []

    def kill_a_reader_once(count: int) -> None:
        """As the kernel's out-of-memory killer would: SIGKILL to a reader while chunks are in flight."""
        if not killed:
            (reader, *_) = multiprocessing.active_children()
            os.kill(reader.pid, signal.SIGKILL)
            killed.append(reader.pid)

    classify_discovered(settings, journal, device, model, kill_a_reader_once)
    journal.close()

    assert killed
    summary = classify_media(settings)  # writes the reports; nothing is left to read
    assert summary.classified == 80
    assert all(row["status"] == "classified" and row["reason"] == "" for row in rows(out))
