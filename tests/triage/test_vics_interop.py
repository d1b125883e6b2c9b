"""A VICS case as a forensic tool writes it, by hand: Windows paths, upper-case hashes,
`IsPrecategorized` in every spelling. Imported for training, classified, and exported so
that the tool matches every entry to its own: the case's own `MediaID`s and
`RelativeFilePath` strings, and `PropertyName`/`PropertyValue` metadata."""

import json
import shutil
from pathlib import Path

import jsonschema
from PIL import Image, ImageDraw

from fl_client.holdings import load_vics_holdings
from fl_protocol.run_config import load_settings
from media.vics import posix_path
from models import ModelSpec, save_model_file
from tests.support.project import PROJECT_DIR, VICS_EXPORT_SCHEMA
from triage.classify import classify_media
from triage.settings import load_classify_settings

CASE = PROJECT_DIR / "tests" / "support" / "vics_case_windows.json"


def case_with_its_files(root: Path) -> tuple[Path, list[dict]]:
    """The hand-written case, and on disk the proxy pictures it lists (discs in Category 1)."""
    case = root / "case.json"
    root.mkdir(parents=True)
    shutil.copy(CASE, case)
    media = json.loads(case.read_text())["value"][0]["Media"]
    for number, entry in enumerate(media):
        image = Image.new("RGB", (24, 24), "white")
        draw = ImageDraw.Draw(image)
        box = (4, 4, 20, 20)
        if entry["Category"] == 1:
            draw.ellipse(box, fill=(40 * number % 255, 0, 0))
        else:
            draw.rectangle(box, fill=(0, 30 * number % 255, 0))
        path = root / posix_path(entry["RelativeFilePath"])
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path, format="PNG")
    return case, media


def test_a_hand_written_windows_case_trains_classifies_and_exports_as_the_tool_wrote_it(tmp_path: Path) -> None:
    case, media = case_with_its_files(tmp_path / "case")

    holdings = load_vics_holdings(case, case.parent, ["disc", "square"], [1, 2], image_size=16, channels=3)
    assert holdings.class_histogram() == [4, 4]  # Category, not IsPrecategorized; Category 0 not mapped
    assert holdings.report.loaded == 8 and len(holdings.report.skipped) == 1

    spec = ModelSpec.from_settings(load_settings(["holdings=synthetic", "holdings.classes=[disc,square]"]))
    model = save_model_file(tmp_path / "model.pt", spec.build(), spec)
    out = tmp_path / "triage"
    summary = classify_media(
        load_classify_settings(
            [f"source={case}", f"model={model}", f"out={out}", "progress=false", "relevant_classes=[disc]",
             "vics_profile=UK", "category_thresholds=[{min_score:0.0,category:1}]"]
        )
    )
    assert summary.classified == 9

    export = json.loads((out / "triage_vics.json").read_text(encoding="utf-8"))
    jsonschema.validate(export, VICS_EXPORT_SCHEMA)
    assert export["@odata.context"].endswith("/UK/$metadata#Cases")
    written = {entry["MediaID"]: entry["RelativeFilePath"] for entry in media}
    exported = {entry["MediaID"]: entry["RelativeFilePath"] for entry in export["value"][0]["Media"]}
    assert exported == written  # backslashes, spaces and upper-case names exactly as the tool wrote them
    for entry in export["value"][0]["Media"]:
        names = [item["PropertyName"] for item in entry["MediaMetadata"]]
        assert "fedtriage.score" in names
        assert all(set(item) == {"PropertyName", "PropertyValue"} for item in entry["MediaMetadata"])
        assert entry["MD5"] == entry["MD5"].upper() and len(entry["SHA1"]) == 40
    csv_paths = {line.split(",")[1] for line in (out / "triage.csv").read_text().splitlines()[1:]}
    assert "DCIM\\100MEDIA\\IMG_0001.PNG" in csv_paths  # the CSV speaks the case's paths too
