"""Near-duplicate groups: files joined through any of their PDQ hashes, transitively, never by themselves."""

import random

import pytest

import triage.near_duplicates as near_duplicates
from media.pdq import hamming
from triage.near_duplicates import group_near_duplicates

MAX_DISTANCE = 31


def pdq(seed: int) -> str:
    """A made-up PDQ value; different seeds give values about 128 bits apart."""
    return f"{random.Random(seed).getrandbits(256):064x}"


def moved(hex_value: str, bits: range) -> str:
    """`hex_value` with the given bit positions inverted."""
    return f"{int(hex_value, 16) ^ sum(1 << bit for bit in bits):064x}"


def test_near_copies_form_a_group_keyed_by_its_smallest_seq() -> None:
    a = pdq(1)

    groups = group_near_duplicates([(7, a), (3, moved(a, range(10))), (9, pdq(2))], MAX_DISTANCE)

    assert groups == {3: 3, 7: 3}


def test_near_duplicates_of_near_duplicates_join_one_group() -> None:
    a = pdq(1)
    b = moved(a, range(0, 25))
    c = moved(b, range(25, 50))  # 50 bits from a: near only through b

    groups = group_near_duplicates([(1, a), (2, c), (3, b)], MAX_DISTANCE)

    assert hamming(a, c) > MAX_DISTANCE
    assert groups == {1: 1, 2: 1, 3: 1}


def test_exact_copies_are_a_group_too() -> None:
    a = pdq(1)

    assert group_near_duplicates([(4, a), (5, a.upper()), (6, pdq(3))], MAX_DISTANCE) == {4: 4, 5: 4}


def test_a_file_whose_own_frames_are_near_each_other_is_not_a_group() -> None:
    a = pdq(1)
    video = [(1, a), (1, moved(a, range(5))), (1, a)]

    assert group_near_duplicates([*video, (2, pdq(2))], MAX_DISTANCE) == {}


def test_any_frame_of_a_video_joins_it_to_a_picture() -> None:
    frames = [pdq(10), pdq(11), pdq(12)]
    picture = moved(frames[2], range(3))

    groups = group_near_duplicates([(1, frame) for frame in frames] + [(2, picture), (3, pdq(13))], MAX_DISTANCE)

    assert groups == {1: 1, 2: 1}


def test_two_groups_stay_apart() -> None:
    a, b = pdq(1), pdq(2)
    items = [(1, a), (2, moved(a, range(4))), (3, b), (4, moved(b, range(30)))]

    assert group_near_duplicates(items, MAX_DISTANCE) == {1: 1, 2: 1, 3: 3, 4: 3}


def test_the_distance_is_inclusive() -> None:
    a = pdq(1)
    items = [(1, a), (2, moved(a, range(MAX_DISTANCE)))]

    assert group_near_duplicates(items, MAX_DISTANCE) == {1: 1, 2: 1}
    assert group_near_duplicates(items, MAX_DISTANCE - 1) == {}


def test_no_files_or_one_file_make_no_group() -> None:
    assert group_near_duplicates([], MAX_DISTANCE) == {}
    assert group_near_duplicates([(1, pdq(1))], MAX_DISTANCE) == {}


def test_a_value_that_is_not_pdq_hex_names_its_file() -> None:
    with pytest.raises(ValueError, match="file 8: not a PDQ hash"):
        group_near_duplicates([(1, pdq(1)), (8, "ab" * 31)], MAX_DISTANCE)


def pairwise_groups(items: list[tuple[int, str]], max_distance: int) -> dict[int, int]:
    """The groups by the definition: every pair of items of different files compared, one at a time."""
    group = {seq: seq for seq, _ in items}
    for i, (seq_a, a) in enumerate(items):
        for seq_b, b in items[i + 1 :]:
            if seq_a != seq_b and hamming(a, b) <= max_distance:
                old, new = max(group[seq_a], group[seq_b]), min(group[seq_a], group[seq_b])
                group = {seq: new if key == old else key for seq, key in group.items()}
    sizes = {key: list(group.values()).count(key) for key in group.values()}
    return {seq: key for seq, key in group.items() if sizes[key] >= 2}


@pytest.mark.parametrize(("rows", "columns", "batch"), [(64, 4096, 1 << 20), (3, 5, 2), (1, 1, 1)])
def test_groups_are_those_of_comparing_every_pair_however_tiled(
    monkeypatch: pytest.MonkeyPatch, rows: int, columns: int, batch: int
) -> None:
    monkeypatch.setattr(near_duplicates, "_TILE_ROWS", rows)
    monkeypatch.setattr(near_duplicates, "_TILE_COLUMNS", columns)
    monkeypatch.setattr(near_duplicates, "_EDGE_BATCH", batch)
    rng = random.Random(5)
    centres = [pdq(seed) for seed in range(6)]
    items = []
    for _ in range(60):
        start = rng.randrange(256 - 40)
        items.append((rng.randrange(200), moved(rng.choice(centres), range(start, start + rng.randrange(40)))))

    groups = group_near_duplicates(items, MAX_DISTANCE)

    assert groups == pairwise_groups(items, MAX_DISTANCE)
    assert len(set(groups.values())) >= 2
