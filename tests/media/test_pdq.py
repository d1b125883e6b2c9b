"""PDQ hashes: bit for bit as Meta's reference hasher, near for edited copies, far for other pictures."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from media.pdq import PdqHash, PdqIndex, hamming, pdq_of_picture, pdq_of_rgb, pdq_words
from tests.support.pictures import as_jpeg, cropped, textured_picture

VECTORS = Path(__file__).parent / "data" / "pdq"

# (file, hash, quality) as Meta's pdq-photo-hasher printed them (see data/pdq/README.md).
REFERENCE_RGB = [
    ("gradient-200x96.png", "ae8aa545af8faaba69a2d554eaaadd55beaa04555fea504520fe5d84200f51da", 22),
    ("noise-grey-64x64.png", "7dc349596ecdddc1f24accfcb4ae8047d9884e8f2284dd2762abc68c24b876b8", 100),
    ("shapes-160x120.png", "f30dee1e0e229e1dac0d5333161e648f7a1c93680eb6cd33f869f2d8e1e22867", 100),
    ("large-shapes-640x560.png", "4ae44aedeb2de91175303564c8a9949f34d6aad32656665a759bc8abd9a11764", 100),
    ("grey-ramp-80x120.png", "aaac695052aaaa8ab6ad8ad547596da80da35544556caa6559ae2ee5529f6d5b", 56),
]
REFERENCE_GREY = ("grey-ramp-80x120.png", "abac695a52aaaa0ab4a9cad647592ca90da345c5556d6c651bae2e645a976d5b", 56)
MATCH_DISTANCE = 31  # Meta's recommended threshold


def pdq_of(picture: Image.Image) -> PdqHash:
    return pdq_of_rgb(np.asarray(picture.convert("RGB")))


# --- the reference ------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "expected", "quality"), REFERENCE_RGB)
def test_an_rgb_picture_hashes_bit_for_bit_as_the_reference(name: str, expected: str, quality: int) -> None:
    with Image.open(VECTORS / name) as picture:
        rgb = np.asarray(picture.convert("RGB"))

    assert pdq_of_rgb(rgb) == PdqHash(expected, quality)


def test_a_grey_picture_hashes_as_the_reference_hashes_one_channel() -> None:
    name, expected, quality = REFERENCE_GREY
    with Image.open(VECTORS / name) as picture:
        grey = np.asarray(picture)

    assert grey.ndim == 2
    assert pdq_of_rgb(grey) == PdqHash(expected, quality)


def test_a_decoded_picture_is_hashed_as_grey_when_it_is_grey_and_as_rgb_otherwise() -> None:
    name, expected, quality = REFERENCE_GREY
    with Image.open(VECTORS / name) as grey, Image.open(VECTORS / "shapes-160x120.png") as shapes:
        assert grey.mode == "L"
        assert pdq_of_picture(grey) == PdqHash(expected, quality)
        assert pdq_of_picture(shapes.convert("RGBA")) == PdqHash(REFERENCE_RGB[2][1], REFERENCE_RGB[2][2])


def test_a_picture_under_five_pixels_on_a_side_has_no_quality() -> None:
    assert pdq_of_rgb(np.full((4, 300, 3), 200, dtype=np.uint8)) == PdqHash("0" * 64, 0)


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((32, 32, 3), dtype=np.float32), np.zeros((32, 32, 4), dtype=np.uint8), np.zeros(32, dtype=np.uint8)],
)
def test_pixels_that_are_not_uint8_rgb_or_grey_are_refused(pixels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="PDQ needs"):
        pdq_of_rgb(pixels)


def test_the_bits_read_the_hex_most_significant_digit_first() -> None:
    h = PdqHash("8" + "0" * 62 + "1", 100)

    assert h.bits == (1 << 255) | 1


# --- near and far -------------------------------------------------------------------------


# PDQ is built for resized and re-encoded copies, not for crops: a crop rescales and
# shifts the picture under the 64 x 64 grid PDQ samples. 1% off each edge moves these
# pictures 16-26 bits, 2% already 30-50, 3% 42-70; so "lightly" here means 1%.
@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda p: p.resize((p.width // 2, p.height // 2), Image.Resampling.LANCZOS), id="half size"),
        pytest.param(lambda p: p.resize((p.width * 2, p.height * 2), Image.Resampling.BICUBIC), id="double size"),
        pytest.param(lambda p: as_jpeg(p, quality=70), id="jpeg 70"),
        pytest.param(lambda p: cropped(p, 0.01), id="1% cropped off each edge"),
        pytest.param(lambda p: as_jpeg(cropped(p, 0.01).resize((200, 150)), quality=70), id="all at once"),
    ],
)
def test_an_edited_copy_is_within_the_match_distance(edit) -> None:
    original = textured_picture(seed=1)
    h = pdq_of(original)

    assert h.quality >= 50
    assert hamming(h, pdq_of(edit(original))) <= MATCH_DISTANCE


def test_unrelated_pictures_are_beyond_the_match_distance() -> None:
    hashes = [pdq_of(textured_picture(seed)) for seed in range(1, 7)]

    assert all(h.quality >= 50 for h in hashes)
    assert min(hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]) > MATCH_DISTANCE


def test_hamming_is_symmetric_and_zero_for_the_same_hash() -> None:
    a = PdqHash("f" * 64, 100)
    b = "0f" * 32

    assert hamming(a, b) == hamming(b, a) == 128
    assert hamming(a, "F" * 64) == 0


def test_a_value_that_is_not_pdq_hex_is_refused() -> None:
    with pytest.raises(ValueError, match="not a PDQ hash"):
        hamming("ab" * 31, "ab" * 32)
    with pytest.raises(ValueError, match="not a PDQ hash"):
        pdq_words(["g" * 64])


def test_words_are_the_hash_in_four_big_endian_parts() -> None:
    words = pdq_words(["0123456789abcdef" * 3 + "fedcba9876543210"])

    assert words.dtype == np.uint64
    assert words.tolist() == [[0x0123456789ABCDEF] * 3 + [0xFEDCBA9876543210]]


# --- the index ----------------------------------------------------------------------------


def flipped(hex_value: str, bits: int) -> str:
    """`hex_value` with its lowest `bits` bits inverted: exactly `bits` away."""
    return f"{int(hex_value, 16) ^ ((1 << bits) - 1):064x}"


def test_the_index_names_the_nearest_listed_hash_within_the_distance() -> None:
    listed = "3c" * 32
    index = PdqIndex([flipped(listed, 20), listed.upper(), "c3" * 32], max_distance=MATCH_DISTANCE)

    assert len(index) == 3
    assert index.nearest(flipped(listed, 5)) == (5, listed)
    assert index.nearest(PdqHash(listed, 90)) == (0, listed)


def test_the_index_finds_nothing_beyond_the_distance() -> None:
    listed = "3c" * 32
    index = PdqIndex([listed], max_distance=MATCH_DISTANCE)

    assert index.nearest(flipped(listed, MATCH_DISTANCE)) == (MATCH_DISTANCE, listed)
    assert index.nearest(flipped(listed, MATCH_DISTANCE + 1)) is None
    assert PdqIndex([], max_distance=MATCH_DISTANCE).nearest(listed) is None


def test_of_equally_near_hashes_the_index_always_names_the_same() -> None:
    query = "0" * 64
    one_bit_away = [f"{1 << bit:064x}" for bit in (200, 3, 77)]

    named = {PdqIndex(order, max_distance=1).nearest(query) for order in (one_bit_away, one_bit_away[::-1])}

    assert named == {(1, min(one_bit_away))}


def test_the_index_survives_pickling_for_worker_processes() -> None:
    listed = [flipped("5a" * 32, bits) for bits in (0, 40, 80)]
    index = PdqIndex(listed, max_distance=MATCH_DISTANCE)

    copy = pickle.loads(pickle.dumps(index))

    assert copy.nearest(flipped(listed[1], 3)) == index.nearest(flipped(listed[1], 3))
    assert copy.max_distance == MATCH_DISTANCE


@pytest.mark.parametrize("max_distance", [-1, 257, True, 3.0])
def test_an_index_distance_outside_the_hash_is_refused(max_distance) -> None:
    with pytest.raises(ValueError, match="max_distance"):
        PdqIndex([], max_distance=max_distance)
