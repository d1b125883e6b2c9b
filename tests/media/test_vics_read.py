"""Reading VICS 2.0 documents (cases and hash sets) and refusing paths that leave the case."""

import json
from pathlib import Path

import pytest

from media.vics import VicsError, VicsMedia, VicsProblem, read_vics_media, resolve_media_path
from tests.support.vics_cases import CASES, MD5, MEDIA, SHA1, case_document, shape_png, write_file

# --- reading documents -------------------------------------------------------------------


def test_a_case_is_read_with_lowercase_hashes_and_paths_as_written(tmp_path: Path) -> None:
    case = case_document(
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
            relative_path="Export\\Images\\a.jpg",
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
    case = case_document(
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
    case = case_document(tmp_path / "case.json", [{"MD5": "secret-looking-value"}, {"RelativeFilePath": ["x"]}])

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
    write_file(root / "Images" / "a.png", shape_png("disc", (200, 0, 0)))
    write_file(tmp_path / "outside" / "secret.png", shape_png("square", (0, 0, 200)))
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


