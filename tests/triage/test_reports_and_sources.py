"""What casework needs of triage's reports, and sources or outputs that cannot be used."""

import json
import os
import subprocess
from pathlib import Path

import pytest

import media.walk
from fedtriage.errors import ConfigError
from fl_client.holdings import write_synthetic_holdings
from fl_protocol.run_config import load_settings
from models import ModelSpec, save_model_file
from tests.support.project import FEDTRIAGE
from triage.classify import classify_media
from triage.settings import load_classify_settings

CLASSES = ["disc", "square"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ModelSpec.from_settings(load_settings(["holdings=synthetic", "holdings.classes=[disc,square]"]))
    return save_model_file(tmp_path_factory.mktemp("model") / "final_model.pt", spec.build(), spec)


@pytest.fixture
def device(tmp_path: Path) -> Path:
    root = tmp_path / "device"
    write_synthetic_holdings(root / "DCIM", CLASSES, 4, 32, "png", seed=1)
    for marker in (root / "DCIM").glob(".*"):  # the generator's bookkeeping, not evidence
        marker.unlink()
    return root


def classify(device: Path, model: Path, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    return classify_media(
        load_classify_settings([f"source={device}", f"model={model}", f"out={out}", "progress=false", *extra])
    )


def test_every_report_names_a_file_by_the_same_media_id_and_gives_its_category(
    tmp_path: Path, device: Path, model_file: Path
) -> None:
    out = tmp_path / "out"
    classify(device, model_file, out, "category_thresholds=[{min_score:0.0,category:2}]")
    rows = json.loads((out / "triage.json").read_text())["files"]
    media = json.loads((out / "triage_vics.json").read_text())["value"][0]["Media"]
    exported = {m["RelativeFilePath"]: m for m in media}
    assert rows and len(exported) == len(rows)
    for row in rows:
        assert row["media_id"] == exported[row["relative_path"]]["MediaID"]
        assert row["category"] == exported[row["relative_path"]]["Category"] == 2


def test_the_summary_is_a_chain_of_custody_record(tmp_path: Path, device: Path, model_file: Path) -> None:
    out = tmp_path / "out"
    classify(device, model_file, out)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["source"] == str(device)
    assert summary["finished_at"].endswith("+00:00")
    assert summary["tool"].startswith("fedtriage ") and "sha256:" in summary["tool"]
    assert len(summary["model_sha256"]) == 64
    assert "note" not in summary


def test_a_second_run_of_a_finished_job_says_it_was_already_complete(
    tmp_path: Path, device: Path, model_file: Path
) -> None:
    out = tmp_path / "out"
    assert classify(device, model_file, out).note is None
    again = classify(device, model_file, out)
    assert again.note is not None and again.note.startswith("already complete")
    assert again.classified == 8


def test_a_source_that_cannot_be_read_is_an_error_naming_source(
    tmp_path: Path, device: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root every folder is readable: the OS's refusal is brought about for this one folder.
    real_scandir = os.scandir

    def refuse(path):  # type: ignore[no-untyped-def]
        if Path(path) == device:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(media.walk.os, "scandir", refuse)
    with pytest.raises(ConfigError, match=f"source: {device} cannot be read"):
        classify(device, model_file, tmp_path / "out")


def test_a_sub_folder_that_cannot_be_read_is_reported_as_a_folder(
    tmp_path: Path, device: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir
    private = device / "DCIM" / "square"

    def refuse(path):  # type: ignore[no-untyped-def]
        if Path(path) == private:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(media.walk.os, "scandir", refuse)
    out = tmp_path / "out"
    summary = classify(device, model_file, out)
    rows = {row["relative_path"]: row for row in json.loads((out / "triage.json").read_text())["files"]}
    assert rows["DCIM/square/"]["status"] == "refused"
    assert rows["DCIM/square/"]["reason"] == "folder cannot be read"
    assert summary.classified == 4  # the discs


def test_an_empty_source_is_triaged_with_a_warning(tmp_path: Path, model_file: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    completed = subprocess.run(
        [FEDTRIAGE, "classify", f"source={empty}", f"model={model_file}", f"out={tmp_path / 'out'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"fedtriage: warning: source: {empty} holds no file" in completed.stderr


def test_an_output_folder_that_cannot_be_written_is_exit_2_naming_out(
    tmp_path: Path, device: Path, model_file: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    completed = subprocess.run(
        [FEDTRIAGE, "classify", f"source={device}", f"model={model_file}", f"out={blocker / 'report'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    expected = f"fedtriage: error: out: {blocker / 'report'} cannot be written (Not a directory)"
    assert completed.stderr.strip() == expected
