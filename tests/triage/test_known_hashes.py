"""Known-hash lists: text lists as units keep them and VICS hash sets, read exactly or refused."""

import hashlib
import json
import re
from pathlib import Path

import pytest

from triage.known_hashes import KnownHashes, KnownHashesError, load_known_hashes

# Made-up hashes of made-up content: nothing here is a real list's entry.
MD5_A = hashlib.md5(b"made-up file a").hexdigest()
MD5_B = hashlib.md5(b"made-up file b").hexdigest()
SHA1_C = hashlib.sha1(b"made-up file c").hexdigest()
SHA1_D = hashlib.sha1(b"made-up file d").hexdigest()
MEDIA = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/UK/$metadata#Media"


def test_a_text_list_with_comments_extra_columns_and_mixed_case_is_read(tmp_path: Path) -> None:
    listing = tmp_path / "known.txt"
    listing.write_bytes(
        (
            "\ufeff# unit list, exported 2024\n"
            "\n"
            f"{MD5_A.upper()}\n"
            f"  {MD5_B[:16].upper()}{MD5_B[16:]}\tholiday.jpg\t1234\r\n"
            f"{SHA1_C},some name.png,99\n"
            f'"{SHA1_D.upper()}" scan.tif\n'
            "   # indented comment\n"
        ).encode("utf-8")
    )

    known = load_known_hashes([listing])

    assert known.md5 == {MD5_A, MD5_B}
    assert known.sha1 == {SHA1_C, SHA1_D}
    assert len(known) == 4


def test_is_known_matches_by_either_hash(tmp_path: Path) -> None:
    known = KnownHashes(md5=frozenset({MD5_A}), sha1=frozenset({SHA1_C}))
    other_md5 = hashlib.md5(b"other").hexdigest()
    other_sha1 = hashlib.sha1(b"other").hexdigest()

    assert known.is_known(MD5_A, other_sha1)
    assert known.is_known(other_md5, SHA1_C)
    assert not known.is_known(other_md5, other_sha1)


def test_a_vics_hash_set_and_a_text_list_are_combined(tmp_path: Path) -> None:
    hash_set = tmp_path / "hashes.json"
    hash_set.write_text(
        json.dumps(
            {
                "@odata.context": MEDIA,
                "value": [
                    {"MediaID": 1, "Category": 1, "MD5": MD5_A.upper(), "SHA1": SHA1_C.upper()},
                    {"MediaID": 2, "MD5": MD5_B},
                    {"MediaID": 3},
                ],
            }
        )
    )
    listing = tmp_path / "more.txt"
    listing.write_text(f"{SHA1_D}\n")

    known = load_known_hashes([hash_set, listing])

    assert known.md5 == {MD5_A, MD5_B}
    assert known.sha1 == {SHA1_C, SHA1_D}


def test_a_vics_case_with_leading_whitespace_is_detected_as_json(tmp_path: Path) -> None:
    case = tmp_path / "case.json"
    case.write_text("\n  " + json.dumps({"value": [{"CaseID": "c", "Media": [{"MD5": MD5_A}, {"SHA1": SHA1_C}]}]}))

    known = load_known_hashes([case])

    assert known.md5 == {MD5_A} and known.sha1 == {SHA1_C}


@pytest.mark.parametrize(
    "bad_line",
    [
        MD5_A[:31],
        MD5_A + "0",
        hashlib.sha256(b"x").hexdigest(),
        "g" * 32,
        "MD5,FileName",
        f"{MD5_A[:16]} {MD5_A[16:]}",
    ],
)
def test_a_malformed_line_names_the_file_and_line(tmp_path: Path, bad_line: str) -> None:
    listing = tmp_path / "known.txt"
    listing.write_text(f"# header\n{MD5_A}\n{bad_line}\n{MD5_B}\n")

    with pytest.raises(KnownHashesError, match=rf"^{re.escape(str(listing))}:3: "):
        load_known_hashes([listing])


def test_a_line_that_is_not_text_names_the_file_and_line(tmp_path: Path) -> None:
    listing = tmp_path / "known.txt"
    listing.write_bytes(f"{MD5_A}\n".encode() + b"\xff\xfe\x00\n")

    with pytest.raises(KnownHashesError, match=rf"^{re.escape(str(listing))}:2: not UTF-8 text"):
        load_known_hashes([listing])


def test_a_vics_entry_with_a_bad_hash_refuses_the_set(tmp_path: Path) -> None:
    hash_set = tmp_path / "hashes.json"
    hash_set.write_text(json.dumps({"value": [{"MD5": MD5_A}, {"MD5": "not-a-hash"}]}))

    with pytest.raises(
        KnownHashesError, match=rf"{re.escape(str(hash_set))}: media entry 1: MD5 is not 32 hex characters"
    ):
        load_known_hashes([hash_set])


def test_a_broken_vics_document_names_the_file(tmp_path: Path) -> None:
    hash_set = tmp_path / "hashes.json"
    hash_set.write_text('{"value": [')

    with pytest.raises(KnownHashesError, match=re.escape(str(hash_set))):
        load_known_hashes([hash_set])


def test_a_missing_list_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(KnownHashesError, match=re.escape(f"{tmp_path / 'absent.txt'}: known-hash list does not exist")):
        load_known_hashes([tmp_path / "absent.txt"])


def test_a_folder_given_as_a_list_names_it(tmp_path: Path) -> None:
    with pytest.raises(KnownHashesError, match=re.escape(f"{tmp_path}: known-hash list cannot be read")):
        load_known_hashes([tmp_path])


def test_no_lists_means_nothing_is_known() -> None:
    known = load_known_hashes([])

    assert len(known) == 0
    assert not known.is_known(MD5_A, SHA1_C)


def test_an_empty_or_comment_only_list_is_an_empty_set(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    comments = tmp_path / "comments.txt"
    comments.write_text("# nothing known yet\n\n")

    assert len(load_known_hashes([empty, comments])) == 0


# --- PDQ ------------------------------------------------------------------------------------

# Made-up PDQ values (patterns, not hashes of any picture).
PDQ_A = "3c" * 32
PDQ_B = "a5" * 32


def test_pdq_lines_are_read_whatever_the_case_of_prefix_and_hex(tmp_path: Path) -> None:
    listing = tmp_path / "known.txt"
    listing.write_text(f'{MD5_A}\nPDQ:{PDQ_A.upper()},picture.jpg,100\n"pdq:{PDQ_B}"\tother.png\n')

    known = load_known_hashes([listing])

    assert known.md5 == {MD5_A}
    assert known.pdq == {PDQ_A, PDQ_B}
    assert len(known) == 3


@pytest.mark.parametrize("bad_pdq", ["pdq:" + PDQ_A[:63], "pdq:" + PDQ_A + "0", "pdq:" + "g" * 64, "pdq:", "pdq"])
def test_a_malformed_pdq_line_names_the_file_and_line(tmp_path: Path, bad_pdq: str) -> None:
    listing = tmp_path / "known.txt"
    listing.write_text(f"# header\npdq:{PDQ_A}\n{bad_pdq}\n")

    with pytest.raises(KnownHashesError, match=rf"^{re.escape(str(listing))}:3: "):
        load_known_hashes([listing])


def test_a_bare_64_hex_value_is_refused_as_ambiguous(tmp_path: Path) -> None:
    listing = tmp_path / "known.txt"
    listing.write_text(f"{PDQ_A}\n")

    with pytest.raises(KnownHashesError, match=r"known.txt:1: .*SHA-256 or a PDQ hash.*'pdq:<64 hex>'"):
        load_known_hashes([listing])


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param({"MD5": MD5_A, "PDQ": PDQ_A.upper()}, id="media property"),
        pytest.param(
            {
                "MD5": MD5_A,
                "AlternativeHashes": [
                    {"HashName": "PhotoDNA", "HashValue": "AAMANw=="},
                    {"HashName": "pdq", "HashValue": PDQ_A},
                ],
            },
            id="alternative hash",
        ),
        pytest.param(
            {"MD5": MD5_A, "MediaMetadata": [{"PropertyName": "PDQ", "PropertyValue": PDQ_A}]}, id="media metadata"
        ),
    ],
)
def test_a_vics_hash_set_with_pdq_is_read(tmp_path: Path, entry: dict) -> None:
    hash_set = tmp_path / "hashes.json"
    hash_set.write_text(json.dumps({"@odata.context": MEDIA, "value": [entry, {"MediaID": 2, "SHA1": SHA1_C}]}))

    known = load_known_hashes([hash_set])

    assert known.pdq == {PDQ_A}
    assert known.md5 == {MD5_A} and known.sha1 == {SHA1_C}


def test_a_vics_entry_with_a_bad_pdq_refuses_the_set(tmp_path: Path) -> None:
    hash_set = tmp_path / "hashes.json"
    hash_set.write_text(json.dumps({"value": [{"MD5": MD5_A}, {"MD5": MD5_B, "PDQ": "not-a-hash"}]}))

    with pytest.raises(
        KnownHashesError, match=rf"{re.escape(str(hash_set))}: media entry 1: PDQ is not 64 hex characters"
    ):
        load_known_hashes([hash_set])


def test_the_pdq_index_finds_known_pictures_within_the_distance(tmp_path: Path) -> None:
    listing = tmp_path / "known.txt"
    listing.write_text(f"pdq:{PDQ_A}\npdq:{PDQ_B}\n")
    known = load_known_hashes([listing])
    three_bits_off = f"{int(PDQ_A, 16) ^ 0b111:064x}"

    index = known.pdq_index(max_distance=31)

    assert index.nearest(three_bits_off) == (3, PDQ_A)
    assert known.pdq_index(max_distance=2).nearest(three_bits_off) is None
    assert known.pdq_index(max_distance=31) is index


def test_lists_without_pdq_give_an_empty_index(tmp_path: Path) -> None:
    known = KnownHashes(md5=frozenset({MD5_A}), sha1=frozenset())

    assert known.pdq == frozenset()
    assert len(known.pdq_index(max_distance=31)) == 0
