"""PDQ perceptual hashes: Meta's 256-bit picture hash, as its reference computes it, and how near two are.

An MD5 or SHA-1 list misses a known picture once it is resized or re-encoded; a PDQ
list does not, because similar pictures get hashes a few bits apart. Hashes are shared
between tools as 64 hex digits, so they must be computed exactly as Meta's reference
`pdq-photo-hasher` computes them: the same pixels give the same bits here and there.

Meta recommends (ThreatExchange `pdq/README.md`) taking a Hamming distance of 31 or
less (of 256 bits) as a match, and discarding hashes of quality 49 or less: a
featureless picture (a blank frame, a flat colour) hashes near every other one.
"""

import ctypes
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

PDQ_HEX = re.compile(r"[0-9a-fA-F]{64}")
PDQ_BITS = 256
# The reference hasher (pdq/cpp/io/pdqio.cpp) first brings a picture larger than this
# on either side to exactly this many pixels square, by nearest neighbour (CImg's
# default resize); the box filters that follow would be slow on megapixels. A picture
# decoded smaller (a JPEG at 1/2, 1/4 scale) with both sides at least this long hashes
# within a few bits of the full one.
PDQ_SIDE = 512
# pdqhash 0.2.8 (pinned) compiles Meta's C++ into its extension module. Its Python
# `compute` converts RGB to luma in float64, the reference in float32, which flips
# bits of nearly featureless pictures; so the luma is made here, as the reference
# makes it, and handed to the compiled PDQ core directly.
_CORE_SYMBOL = "_ZN8facebook3pdq7hashing23pdqHash256FromFloatLumaEPfS2_iiPA64_fS4_PA16_fRNS1_7Hash256ERi"
_LUMA_R, _LUMA_G, _LUMA_B = np.float32(0.299), np.float32(0.587), np.float32(0.114)


@dataclass(frozen=True)
class PdqHash:
    """One picture's PDQ hash (64 lowercase hex digits) and quality (0 featureless .. 100)."""

    hex: str
    quality: int

    @property
    def bits(self) -> int:
        """The 256 bits as one integer, the first hex digit most significant."""
        return int(self.hex, 16)


def pdq_of_rgb(rgb: np.ndarray) -> PdqHash:
    """The PDQ hash of uint8 pixels, [H, W, 3] RGB or [H, W] grey, bit for bit as the reference.

    A grey array is hashed as the reference hashes a one-channel file (its luma is the
    grey level). The same picture as RGB has its luma rounded otherwise, which moves
    the hash of a nearly featureless picture (a smooth ramp: 26 bits, at quality 56).
    Pictures under 5 pixels on a side have quality 0.
    """
    pixels = _reference_size(_checked_pixels(rgb))
    if pixels.ndim == 3:
        luma = _LUMA_R * pixels[:, :, 0].astype(np.float32)
        luma += _LUMA_G * pixels[:, :, 1].astype(np.float32)
        luma += _LUMA_B * pixels[:, :, 2].astype(np.float32)
    else:
        luma = pixels.astype(np.float32)
    return _hash_luma(np.ascontiguousarray(luma))


def pdq_of_picture(picture: Image.Image) -> PdqHash:
    """The PDQ hash of a decoded picture: greyscale (mode L) as one channel, anything else as RGB."""
    if picture.mode == "L":
        return pdq_of_rgb(np.asarray(picture))
    return pdq_of_rgb(np.asarray(picture.convert("RGB")))


def hamming(a: PdqHash | str, b: PdqHash | str) -> int:
    """How many of the 256 bits differ (0 identical, about 128 for unrelated pictures)."""
    return (int(_hex_of(a), 16) ^ int(_hex_of(b), 16)).bit_count()


def pdq_words(hexes: Sequence[str]) -> np.ndarray:
    """PDQ hex values as uint64 [N, 4], most significant word first, for vectorised distances.

    XOR two rows and count the bits (`np.bitwise_count`) for their Hamming distance.
    """
    for value in hexes:
        if not isinstance(value, str) or not PDQ_HEX.fullmatch(value):
            raise ValueError(f"not a PDQ hash (64 hex characters): {value!r:.80}")
    return _words(hexes)


class PdqIndex:
    """Listed PDQ hashes, searched all at once for the one nearest to a picture's hash.

    The list is held as four columns of uint64; one query XORs them whole and counts
    bits, well under a millisecond for 100,000 hashes. Meta recommends `max_distance`
    31. Picklable (32 bytes a hash), so that worker processes get their own copy.
    """

    def __init__(self, listed: Iterable[str], max_distance: int) -> None:
        if isinstance(max_distance, bool) or not isinstance(max_distance, int) or not 0 <= max_distance <= PDQ_BITS:
            raise ValueError(f"max_distance must be an integer in 0..{PDQ_BITS}, got {max_distance!r}")
        # Sorted, so that of equally near hashes the same one is named on every run.
        hexes = sorted({_hex_of(value) for value in listed})
        self._columns = np.ascontiguousarray(_words(hexes).T)
        self.max_distance = max_distance

    def __len__(self) -> int:
        return self._columns.shape[1]

    def nearest(self, h: PdqHash | str) -> tuple[int, str] | None:
        """(distance, listed hex) of the nearest listed hash, or None if none is within `max_distance`."""
        if not len(self):
            return None
        query = _words([_hex_of(h)])[0]
        distances = np.bitwise_count(self._columns[0] ^ query[0]).astype(np.uint16)
        for column, word in zip(self._columns[1:], query[1:], strict=True):
            distances += np.bitwise_count(column ^ word)
        best = int(np.argmin(distances))
        distance = int(distances[best])
        if distance > self.max_distance:
            return None
        return distance, "".join(f"{int(word):016x}" for word in self._columns[:, best])


def _hex_of(value: PdqHash | str) -> str:
    text = value.hex if isinstance(value, PdqHash) else value
    if not isinstance(text, str) or not PDQ_HEX.fullmatch(text):
        raise ValueError(f"not a PDQ hash (64 hex characters): {text!r:.80}")
    return text.lower()


def _words(hexes: Sequence[str]) -> np.ndarray:
    words = np.frombuffer(bytes.fromhex("".join(hexes)), dtype=">u8")
    return words.reshape(len(hexes), PDQ_BITS // 64).astype(np.uint64)


def _checked_pixels(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise ValueError(f"PDQ needs uint8 pixels, got {getattr(rgb, 'dtype', type(rgb).__name__)}")
    if rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3):
        return rgb
    raise ValueError(f"PDQ needs [H, W, 3] RGB or [H, W] grey pixels, got shape {rgb.shape}")


def _reference_size(pixels: np.ndarray) -> np.ndarray:
    """The pixels the reference hashes: a picture over 512 on a side becomes 512 x 512.

    CImg's nearest neighbour takes, for output column x, input column floor(x * W / 512)
    computed in double precision, and likewise for rows; so does this.
    """
    height, width = pixels.shape[:2]
    if height <= PDQ_SIDE and width <= PDQ_SIDE:
        return pixels
    side = np.arange(PDQ_SIDE, dtype=np.float64)
    rows = (side * height / PDQ_SIDE).astype(np.intp)
    columns = (side * width / PDQ_SIDE).astype(np.intp)
    return pixels[rows[:, np.newaxis], columns[np.newaxis, :]]


def _hash_luma(luma: np.ndarray) -> PdqHash:
    """The reference's `pdqHash256FromFloatLuma` on float32 luma [H, W] (which it overwrites)."""
    rows, columns = luma.shape
    scratch = np.empty_like(luma)
    buffer64x64 = np.empty((64, 64), dtype=np.float32)
    buffer16x64 = np.empty((16, 64), dtype=np.float32)
    buffer16x16 = np.empty((16, 16), dtype=np.float32)
    words = np.zeros(16, dtype=np.uint16)  # Hash256: bit k is bit (k % 16) of word k // 16
    quality = ctypes.c_int(0)
    _pdq_core()(
        luma.ctypes.data,
        scratch.ctypes.data,
        rows,
        columns,
        buffer64x64.ctypes.data,
        buffer16x64.ctypes.data,
        buffer16x16.ctypes.data,
        words.ctypes.data,
        ctypes.byref(quality),
    )
    # The reference prints word 15 first (Hash256::format), so bit 255 leads.
    return PdqHash("".join(f"{int(word):04x}" for word in words[::-1]), int(quality.value))


@functools.cache
def _pdq_core() -> Callable[..., None]:
    """The compiled reference function, looked up once in pdqhash's extension module.

    ctypes lets go of the GIL during the call, so threads hash pictures side by side.
    """
    import pdqhash.bindings

    try:
        function = getattr(ctypes.CDLL(pdqhash.bindings.__file__), _CORE_SYMBOL)
    except AttributeError as err:
        raise RuntimeError(
            "pdqhash's compiled PDQ core was not found; fedtriage needs the pdqhash version it pins"
        ) from err
    function.restype = None
    pointer = ctypes.c_void_p
    function.argtypes = [pointer, pointer, ctypes.c_int, ctypes.c_int, pointer, pointer, pointer, pointer, pointer]
    return function
