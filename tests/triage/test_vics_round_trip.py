"""VICS import -> federated training -> triage -> VICS export, all on generated images."""

import hashlib
import json
import random
from pathlib import Path

import jsonschema

from fl_client.holdings import write_synthetic_holdings
from fl_protocol.run_config import load_settings
from tests.support.inprocess_grid import federate_in_process
from tests.support.kits import SMALL_FEDERATION
from tests.support.project import VICS_EXPORT_SCHEMA
from triage.classify import classify_media
from triage.settings import load_classify_settings

SCHEMA = VICS_EXPORT_SCHEMA
# Made-up category codes of a proxy task: "disc" images are the ones to find.
CATEGORY = {"square": 2, "disc": 1}


def vics_case(root: Path, seed: int, per_class: int, first_media_id: int) -> Path:
    """Generated images under `root/media` and a VICS 2.0 case listing them with categories."""
    write_synthetic_holdings(root / "media", list(CATEGORY), per_class, 32, "mixed", seed=seed)
    coin = random.Random(seed)
    media = []
    for media_id, path in enumerate(sorted((root / "media").rglob("*.*")), start=first_media_id):
        if path.name.startswith("."):
            continue
        data = path.read_bytes()
        media.append({
            "MediaID": media_id,
            "Category": CATEGORY[path.parent.name],
            "IsPrecategorized": coin.choice(["true", "false"]),  # not trusted either way
            "MD5": hashlib.md5(data).hexdigest().upper(),
            "SHA1": hashlib.sha1(data).hexdigest().upper(),
            "MediaSize": len(data),
            "RelativeFilePath": str(path.relative_to(root)).replace("/", "\\"),  # as Windows tools write it
        })
    case = root / "case.json"
    case.write_text(json.dumps({
        "@odata.context": "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/Default/$metadata#Cases",
        "value": [{"CaseID": f"case-{seed}", "SourceApplicationName": "test", "Media": media}],
    }))
    return case


def test_a_categorized_vics_export_trains_a_model_that_triages_a_new_vics_case(tmp_path: Path) -> None:
    training_case = vics_case(tmp_path / "unit", seed=1, per_class=60, first_media_id=1)
    settings = load_settings(
        [
            "holdings=vics", f"holdings.path={training_case}", "holdings.classes=[square,disc]",
            "holdings.vics_categories=[2,1]", "holdings.image_size=16", "federation.num_nodes=2",
            "federation.num_rounds=8", "train=adam", "train.local_epochs=5", "tracking.enabled=false",
            f"output_dir={tmp_path / 'training'}", *SMALL_FEDERATION,
        ]
    )
    summary, _ = federate_in_process(settings)
    assert summary.final_metrics["central/eval-accuracy"] > 0.75

    seized_case = vics_case(tmp_path / "seized", seed=2, per_class=15, first_media_id=500)
    out = tmp_path / "triage"
    result = classify_media(
        load_classify_settings(
            [f"source={seized_case}", f"model={summary.final_model_path}", f"out={out}", "progress=false",
             f"known_hashes=[{training_case}]", "category_thresholds=[{min_score:0.5,category:1}]"]
        )
    )
    assert result.classified == 30 and result.known == 0  # a fresh device: nothing known yet

    export = json.loads((out / "triage_vics.json").read_text())
    jsonschema.validate(export, SCHEMA)
    media = export["value"][0]["Media"]
    assert sorted(m["MediaID"] for m in media) == list(range(500, 530))  # the case's own ids come back
    written = {m["MediaID"]: m["RelativeFilePath"] for m in json.loads(seized_case.read_text())["value"][0]["Media"]}
    assert {m["MediaID"]: m["RelativeFilePath"] for m in media} == written  # and its own paths, backslashes too
    scores = {m["RelativeFilePath"]: float(next(p["PropertyValue"] for p in m["MediaMetadata"]
                                               if p["PropertyName"] == "fedtriage.score")) for m in media}
    discs = [score for path, score in scores.items() if "disc" in path]
    squares = [score for path, score in scores.items() if "square" in path]
    assert sum(discs) / len(discs) > sum(squares) / len(squares) + 0.3  # the relevant class ranks first


def test_files_of_the_training_case_are_known_when_they_turn_up_again(tmp_path: Path) -> None:
    training_case = vics_case(tmp_path / "unit", seed=1, per_class=4, first_media_id=1)
    from models import ModelSpec, save_model_file

    spec = ModelSpec.from_settings(load_settings(["holdings=synthetic", "holdings.classes=[square,disc]"]))
    model = save_model_file(tmp_path / "model.pt", spec.build(), spec)
    result = classify_media(
        load_classify_settings(
            [f"source={training_case}", f"model={model}", f"out={tmp_path / 'out'}", "progress=false",
             f"known_hashes=[{training_case}]"]
        )
    )
    assert result.known == 8 and result.classified == 0
