"""VICS 2.0 documents: reading cases and hash sets, refusing paths that leave the case,
and a unit's categorized case as training holdings."""

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from fl_client.holdings import (
    HoldingsError,
    VicsError,
    VicsMedia,
    VicsProblem,
    load_holdings,
    load_vics_holdings,
    read_vics_media,
    resolve_media_path,
)
from fl_protocol.errors import ConfigError
from fl_protocol.run_config import load_settings

CASES = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{}/$metadata#Cases"
MEDIA = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/{}/$metadata#Media"
MD5 = "0123456789ABCDEF0123456789ABCDEF"
SHA1 = "0123456789ABCDEF0123456789ABCDEF01234567"


def _shape_png(shape: str, colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (24, 24), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    if shape == "disc":
        draw.ellipse((4, 4, 20, 20), fill=colour)
    else:
        draw.rectangle((4, 4, 20, 20), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _media(relative_path: str | None, content: bytes | None, category: int | None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"MediaID": extra.pop("media_id", 1)}
    if category is not None:
        entry["Category"] = category
    if content is not None:
        entry["MD5"] = hashlib.md5(content).hexdigest().upper()
        entry["SHA1"] = hashlib.sha1(content).hexdigest().upper()
        entry["MediaSize"] = len(content)
    if relative_path is not None:
        entry["RelativeFilePath"] = relative_path
    entry.update(extra)
    return entry


def _case(path: Path, media: list[Any], profile: str = "Default") -> Path:
    document = {
        "@odata.context": CASES.format(profile),
        "value": [{"CaseID": "3f2c1b7e-0000-4000-8000-000000000001", "CaseNumber": "T-1", "Media": media}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# --- reading documents -------------------------------------------------------------------


def test_a_case_is_read_with_lowercase_hashes_and_posix_paths(tmp_path: Path) -> None:
    case = _case(
        tmp_path / "case.json",
        [
            {
                "MediaID": 7,
                "Category": 2,
                "MD5": MD5,
                "SHA1": SHA1,
                "MediaSize": 1234,
                "RelativeFilePath": "Export\\Images\\a.jpg",
                "IsPrecategorized": "true",
                "MimeType": "image/jpeg",
                "MediaFiles": [{"FileName": "a.jpg", "FilePath": "Export\\Images"}],
                "MediaMetadata": [{"PropertyName": "Note", "Value": "x"}],
            },
            {"MediaID": 8, "MD5": MD5.lower(), "IsPrecategorized": False},
        ],
    )

    items = list(read_vics_media(case))

    assert items == [
        VicsMedia(
            media_id=7,
            category=2,
            md5=MD5.lower(),
            sha1=SHA1.lower(),
            size=1234,
            relative_path="Export/Images/a.jpg",
            is_precategorized=True,
        ),
        VicsMedia(
            media_id=8,
            category=None,
            md5=MD5.lower(),
            sha1=None,
            size=None,
            relative_path=None,
            is_precategorized=False,
        ),
    ]


@pytest.mark.parametrize("profile", ["Default", "US", "UK", "CUSTOM"])
def test_a_hash_set_is_read_whatever_its_profile(tmp_path: Path, profile: str) -> None:
    path = tmp_path / "hashes.json"
    path.write_text(
        json.dumps({"@odata.context": MEDIA.format(profile), "value": [{"MD5": MD5}, {"SHA1": SHA1.lower()}]})
    )

    items = list(read_vics_media(path))

    assert [(item.md5, item.sha1) for item in items if isinstance(item, VicsMedia)] == [
        (MD5.lower(), None),
        (None, SHA1.lower()),
    ]


def test_a_bare_list_of_media_is_read(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"MediaID": 1, "MD5": MD5}, {"MediaID": 2}]))

    assert [item.media_id for item in read_vics_media(path) if isinstance(item, VicsMedia)] == [1, 2]


def test_media_of_several_cases_are_read_in_document_order(tmp_path: Path) -> None:
    path = tmp_path / "cases.json"
    path.write_text(
        json.dumps(
            {
                "@odata.context": CASES.format("US"),
                "value": [
                    {"CaseID": "a", "Media": [{"MediaID": 1}, {"MediaID": 2}]},
                    {"CaseID": "b", "Media": []},
                    {"CaseID": "c", "Media": [{"MediaID": 3}]},
                ],
            }
        )
    )

    assert [item.media_id for item in read_vics_media(path) if isinstance(item, VicsMedia)] == [1, 2, 3]


def test_bad_entries_become_problems_and_the_rest_is_read(tmp_path: Path) -> None:
    case = _case(
        tmp_path / "case.json",
        [
            {"MediaID": 1, "MD5": "abc"},
            {"MediaID": "one"},
            {"MediaID": 3, "RelativeFilePath": 42},
            "not an object",
            {"MediaID": 5, "SHA1": MD5},
            {"MediaID": 6, "Category": True},
            {"MediaID": 7, "IsPrecategorized": "maybe"},
            {"MediaID": 8, "MediaSize": -1},
            {"MediaID": -9},
            {"MediaID": 9, "MD5": MD5, "Category": 1},
        ],
    )

    items = list(read_vics_media(case))

    assert items[:9] == [
        VicsProblem(0, "MD5 is not 32 hex characters"),
        VicsProblem(1, "MediaID is not an integer"),
        VicsProblem(2, "RelativeFilePath is not a string"),
        VicsProblem(3, "entry is not a JSON object"),
        VicsProblem(4, "SHA1 is not 40 hex characters"),
        VicsProblem(5, "Category is not an integer"),
        VicsProblem(6, "IsPrecategorized is not a boolean"),
        VicsProblem(7, "MediaSize is negative"),
        VicsProblem(8, "MediaID is negative"),  # the export could not carry it
    ]
    assert isinstance(items[9], VicsMedia) and items[9].media_id == 9


def test_problem_reasons_carry_no_values_from_the_document(tmp_path: Path) -> None:
    case = _case(tmp_path / "case.json", [{"MD5": "secret-looking-value"}, {"RelativeFilePath": ["x"]}])

    reasons = [item.reason for item in read_vics_media(case) if isinstance(item, VicsProblem)]

    assert len(reasons) == 2
    assert not any("secret" in reason or "x" in reason.split() for reason in reasons)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        (b"", "not a VICS JSON document"),
        (b"MD5,FileName\n", "not a VICS JSON document"),
        (b"\xff\xfe\x00garbage", "not a VICS JSON document"),
        (b'{"@odata.context": "x"}', "no recognisable VICS structure"),
        (b'{"value": {"Media": []}}', "no recognisable VICS structure"),
        (b'{"value": [{"CaseID": "a", "Media": "none"}]}', "no recognisable VICS structure"),
        (b'"just a string"', "no recognisable VICS structure"),
        (b'[{"MediaID": ' + b"9" * 5000 + b"}]", "not a VICS JSON document"),
        (b"[" * 100_000, "not a VICS JSON document"),
    ],
)
def test_unreadable_documents_raise_naming_the_file(tmp_path: Path, content: bytes | None, problem: str) -> None:
    path = tmp_path / "broken.json"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(VicsError, match=problem) as raised:
        read_vics_media(path)

    assert str(path) in str(raised.value)


# --- paths inside the case's root --------------------------------------------------------


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    _write(root / "Images" / "a.png", _shape_png("disc", (200, 0, 0)))
    _write(tmp_path / "outside" / "secret.png", _shape_png("square", (0, 0, 200)))
    (root / "Images" / "link_out.png").symlink_to(tmp_path / "outside" / "secret.png")
    (root / "Images" / "link_in.png").symlink_to(root / "Images" / "a.png")
    (root / "dir_out").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "Images" / "folder").mkdir()
    return root


def test_a_path_inside_the_root_resolves_with_either_separator(media_root: Path) -> None:
    assert resolve_media_path(media_root, "Images/a.png") == media_root / "Images" / "a.png"
    assert resolve_media_path(media_root, "Images\\a.png") == media_root / "Images" / "a.png"
    assert resolve_media_path(media_root, "./Images/a.png") == media_root / "Images" / "a.png"
    assert resolve_media_path(media_root, "Images/link_in.png") == media_root / "Images" / "link_in.png"


@pytest.mark.parametrize(
    "relative_path",
    [
        "/etc/passwd",
        "\\\\server\\share\\a.png",
        "C:\\Users\\a.png",
        "c:a.png",
        "../outside/secret.png",
        "Images/../../outside/secret.png",
        "Images\\..\\..\\outside\\secret.png",
        "Images/link_out.png",
        "dir_out/secret.png",
    ],
)
def test_paths_that_leave_the_root_are_refused(media_root: Path, relative_path: str) -> None:
    assert resolve_media_path(media_root, relative_path) == "path leaves the root"


def test_missing_and_non_regular_files_are_refused_with_their_reason(media_root: Path) -> None:
    assert resolve_media_path(media_root, "Images/gone.png") == "file missing"
    assert resolve_media_path(media_root, "Images/folder") == "not a regular file"


# --- a categorized case as training holdings ---------------------------------------------


@pytest.fixture
def categorized_case(tmp_path: Path) -> Path:
    """Discs in Category 1, squares in Category 3, and every kind of entry that cannot be used."""
    root = tmp_path / "case"
    media: list[Any] = []
    for number in range(3):
        content = _write(root / "Media" / f"disc{number}.png", _shape_png("disc", (40 * number, 0, 0))).read_bytes()
        media.append(_media(f"Media\\disc{number}.png", content, category=1, media_id=number))
    for number in range(2):
        content = _write(root / "Media" / f"square{number}.png", _shape_png("square", (0, 50 * number, 0))).read_bytes()
        media.append(_media(f"Media/square{number}.png", content, category=3, media_id=10 + number))
    extra = _write(root / "Media" / "precategorized.png", _shape_png("disc", (9, 9, 9))).read_bytes()
    media.append(_media("Media/precategorized.png", extra, category=2, IsPrecategorized=True, media_id=20))
    media.append(_media("Media/uncategorized.png", extra, category=0, media_id=21))
    media.append(_media(None, extra, category=1, media_id=22))
    media.append(_media("../elsewhere.png", extra, category=1, media_id=23))
    media.append(_media("Media/missing.png", extra, category=1, media_id=24))
    _write(root / "Media" / "notes.png", b"not a picture at all\n")
    media.append(_media("Media/notes.png", b"not a picture at all\n", category=3, media_id=25))
    media.append({"MediaID": "bad", "Category": 1, "RelativeFilePath": "Media/disc0.png"})
    media.append(_media("Media/disc0.png", None, category=1, media_id=27))
    return _case(root / "case.json", media)


def test_a_case_loads_labelled_by_category_and_reports_every_skipped_entry(categorized_case: Path) -> None:
    holdings = load_vics_holdings(
        categorized_case, categorized_case.parent, ["disc", "square"], [1, 3], image_size=16, channels=3
    )

    assert tuple(holdings.images.shape) == (5, 3, 16, 16)
    assert holdings.labels.tolist() == [0, 0, 0, 1, 1]
    assert holdings.classes == ("disc", "square")
    assert holdings.report.source == f"vics {categorized_case}"
    assert holdings.report.class_counts == {"disc": 3, "square": 2}
    assert [(skipped.path, skipped.reason) for skipped in holdings.report.skipped] == [
        ("Media/precategorized.png", "category not mapped"),
        ("Media/uncategorized.png", "category not mapped"),
        (f"{categorized_case} entry 7", "no RelativeFilePath"),
        ("../elsewhere.png", "path leaves the root"),
        ("Media/missing.png", "file missing"),
        ("Media/notes.png", "not an image"),
        (f"{categorized_case} entry 11", "MediaID is not an integer"),
        ("Media/disc0.png", "file listed by another entry"),
    ]


def test_is_precategorized_is_not_trusted_as_a_label(tmp_path: Path) -> None:
    root = tmp_path / "case"
    disc = _write(root / "d.png", _shape_png("disc", (1, 2, 3))).read_bytes()
    square = _write(root / "s.png", _shape_png("square", (1, 2, 3))).read_bytes()
    guess = _write(root / "guess.png", _shape_png("disc", (3, 2, 1))).read_bytes()
    case = _case(
        root / "case.json",
        [
            _media("d.png", disc, category=1, IsPrecategorized=False),
            _media("s.png", square, category=2, IsPrecategorized="false"),
            _media("guess.png", guess, category=None, IsPrecategorized=True),
            _media("guess.png", guess, category=5, IsPrecategorized="true"),
        ],
    )

    holdings = load_vics_holdings(case, root, ["a", "b"], [1, 2], image_size=8, channels=1)

    assert holdings.labels.tolist() == [0, 1]
    assert [skipped.reason for skipped in holdings.report.skipped] == ["category not mapped"] * 2


def test_the_flat_report_names_no_local_path(categorized_case: Path) -> None:
    holdings = load_vics_holdings(categorized_case, categorized_case.parent, ["disc", "square"], [1, 3], 8, 3)

    flat = holdings.report.to_flat_dict()

    assert flat["skipped.category not mapped"] == 2
    assert not any(str(categorized_case.parent) in f"{key}{value}" for key, value in flat.items())


def test_a_class_without_any_usable_image_names_the_class_and_the_case(categorized_case: Path) -> None:
    with pytest.raises(HoldingsError, match=r"'knife' \(Category 4\).*case\.json"):
        load_vics_holdings(categorized_case, categorized_case.parent, ["disc", "knife"], [1, 4], 8, 3)


def test_a_case_without_any_usable_entry_is_an_error(tmp_path: Path) -> None:
    case = _case(tmp_path / "case.json", [_media("gone.png", b"x", category=1)])

    with pytest.raises(HoldingsError, match="no usable image.*1 file missing"):
        load_vics_holdings(case, tmp_path, ["a", "b"], [1, 2], 8, 3)


def test_a_broken_case_file_is_a_holdings_error_naming_it(tmp_path: Path) -> None:
    case = tmp_path / "case.json"
    case.write_text("{ not json")

    with pytest.raises(HoldingsError, match=f"holdings.path: {case}"):
        load_vics_holdings(case, tmp_path, ["a", "b"], [1, 2], 8, 3)


def test_mismatched_category_codes_name_the_setting(categorized_case: Path) -> None:
    with pytest.raises(ConfigError, match="holdings.vics_categories"):
        load_vics_holdings(categorized_case, categorized_case.parent, ["disc", "square"], [1], 8, 3)
    with pytest.raises(ConfigError, match="holdings.vics_categories"):
        load_vics_holdings(categorized_case, categorized_case.parent, ["disc", "square"], [1, 1], 8, 3)


# --- settings ----------------------------------------------------------------------------


def test_vics_holdings_compose_validate_and_load_from_settings(categorized_case: Path, tmp_path: Path) -> None:
    settings = load_settings(
        [
            "holdings=vics",
            f"holdings.path={categorized_case.name}",
            "holdings.classes=[disc,square]",
            "holdings.vics_categories=[1,3]",
            "holdings.image_size=8",
        ],
        base=categorized_case.parent,
    )

    assert settings.holdings.source == "vics"
    assert settings.holdings.path == str(categorized_case)  # made absolute against base
    assert settings.holdings.vics_root is None
    holdings = load_holdings(settings.holdings)
    assert holdings.report.class_counts == {"disc": 3, "square": 2}


def test_vics_root_is_made_absolute_like_the_case_path(categorized_case: Path) -> None:
    settings = load_settings(
        [
            "holdings=vics",
            f"holdings.path={categorized_case}",
            "holdings.classes=[disc,square]",
            "holdings.vics_categories=[1,3]",
            "holdings.vics_root=.",
            "holdings.image_size=8",
        ],
        base=categorized_case.parent,
    )

    assert settings.holdings.vics_root == str(categorized_case.parent.resolve())
    assert len(load_holdings(settings.holdings)) == 5


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ([], "holdings.path"),
        (["holdings.path=case.json"], "holdings.classes"),
        (["holdings.path=case.json", "holdings.classes=[a,b]"], "holdings.vics_categories"),
        (
            ["holdings.path=case.json", "holdings.classes=[a,b]", "holdings.vics_categories=[1]"],
            "holdings.vics_categories",
        ),
        (
            ["holdings.path=case.json", "holdings.classes=[a,b]", "holdings.vics_categories=[1,1]"],
            "holdings.vics_categories",
        ),
        (
            ["holdings.path=case.json", "holdings.classes=[a,b]", "holdings.vics_categories=[1,-2]"],
            "holdings.vics_categories",
        ),
    ],
)
def test_incomplete_vics_settings_name_the_setting(overrides: list[str], key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(["holdings=vics", *overrides])

    assert raised.value.key == key
