"""A unit's categorized VICS case as training holdings, labelled by its Category."""

from pathlib import Path
from typing import Any

import pytest

from fedtriage.errors import ConfigError
from fl_client.holdings import HoldingsError, load_holdings, load_vics_holdings, write_synthetic_holdings
from fl_client.node_holdings import HOLDINGS_PATH_KEY, holdings_for_node
from fl_protocol.run_config import load_settings, node_run_config, node_settings_from_run_config
from fl_protocol.settings import NodeSettings
from tests.support.vics_cases import case_document, media_entry, shape_png, write_file

# --- a categorized case as training holdings ---------------------------------------------


@pytest.fixture
def categorized_case(tmp_path: Path) -> Path:
    """Discs in Category 1, squares in Category 3, and every kind of entry that cannot be used."""
    root = tmp_path / "case"
    media: list[Any] = []
    for number in range(3):
        content = write_file(root / "Media" / f"disc{number}.png", shape_png("disc", (40 * number, 0, 0))).read_bytes()
        media.append(media_entry(f"Media\\disc{number}.png", content, category=1, media_id=number))
    for number in range(2):
        square = shape_png("square", (0, 50 * number, 0))
        content = write_file(root / "Media" / f"square{number}.png", square).read_bytes()
        media.append(media_entry(f"Media/square{number}.png", content, category=3, media_id=10 + number))
    extra = write_file(root / "Media" / "precategorized.png", shape_png("disc", (9, 9, 9))).read_bytes()
    media.append(media_entry("Media/precategorized.png", extra, category=2, IsPrecategorized=True, media_id=20))
    media.append(media_entry("Media/uncategorized.png", extra, category=0, media_id=21))
    media.append(media_entry(None, extra, category=1, media_id=22))
    media.append(media_entry("../elsewhere.png", extra, category=1, media_id=23))
    media.append(media_entry("Media/missing.png", extra, category=1, media_id=24))
    write_file(root / "Media" / "notes.png", b"not a picture at all\n")
    media.append(media_entry("Media/notes.png", b"not a picture at all\n", category=3, media_id=25))
    media.append({"MediaID": "bad", "Category": 1, "RelativeFilePath": "Media/disc0.png"})
    media.append(media_entry("Media/disc0.png", None, category=1, media_id=27))
    return case_document(root / "case.json", media)


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
    disc = write_file(root / "d.png", shape_png("disc", (1, 2, 3))).read_bytes()
    square = write_file(root / "s.png", shape_png("square", (1, 2, 3))).read_bytes()
    guess = write_file(root / "guess.png", shape_png("disc", (3, 2, 1))).read_bytes()
    case = case_document(
        root / "case.json",
        [
            media_entry("d.png", disc, category=1, IsPrecategorized=False),
            media_entry("s.png", square, category=2, IsPrecategorized="false"),
            media_entry("guess.png", guess, category=None, IsPrecategorized=True),
            media_entry("guess.png", guess, category=5, IsPrecategorized="true"),
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
    case = case_document(tmp_path / "case.json", [media_entry("gone.png", b"x", category=1)])

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
        ([], "holdings.classes"),
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


def test_vics_holdings_without_a_case_file_name_holdings_path_where_they_are_read() -> None:
    # A coordinator's settings may leave it out (deployed nodes name their own); reading may not.
    settings = load_settings(["holdings=vics", "holdings.classes=[a,b]", "holdings.vics_categories=[1,2]"])
    with pytest.raises(ConfigError) as raised:
        load_holdings(settings.holdings)
    assert raised.value.key == "holdings.path"


# --- a deployed unit's case, mapped by its own policy --------------------------------------


def node_settings(overrides: list[str]) -> NodeSettings:
    """A node's settings as the coordinator's run config gives them."""
    return node_settings_from_run_config(node_run_config(load_settings(overrides)))


def test_a_units_policy_maps_several_of_its_categories_to_one_federation_class(categorized_case: Path) -> None:
    holdings = load_vics_holdings(
        categorized_case, categorized_case.parent, ["round", "box"], [[1, 2], [3]], image_size=16, channels=3
    )
    assert holdings.labels.tolist().count(0) == 4  # three discs in Category 1, one entry in Category 2
    assert holdings.labels.tolist().count(1) == 2


def test_a_deployed_node_trains_on_its_vics_case_through_its_category_map(categorized_case: Path) -> None:
    settings = node_settings(["holdings.classes=[round,box]", "holdings.image_size=16", "holdings.val_fraction=0.2"])
    node = holdings_for_node(settings, {HOLDINGS_PATH_KEY: str(categorized_case)}, {"round": ["1"], "box": ["3"]})
    assert node.train.classes == ("round", "box") and len(node.train) + len(node.val) == 5
    with pytest.raises(HoldingsError, match="policy.holdings.categories"):  # a case needs Category numbers
        holdings_for_node(settings, {HOLDINGS_PATH_KEY: str(categorized_case)}, {})


def test_a_units_policy_lets_several_folders_feed_one_class(tmp_path: Path) -> None:
    write_synthetic_holdings(tmp_path, ["disc", "square", "cross"], 4, 16, "png", seed=0)
    settings = node_settings(["holdings.classes=[round,angular]", "holdings.image_size=16"])
    node = holdings_for_node(settings, {HOLDINGS_PATH_KEY: str(tmp_path)},
                             {"round": ["disc"], "angular": ["square", "cross"]})
    counts = node.report.to_flat_dict()
    assert len(node.train) + len(node.val) == 12, counts
