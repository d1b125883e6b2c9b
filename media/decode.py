"""Turning one untrusted file into pixels, or into the reason it cannot be used.

Holdings folders and seized media alike hold broken downloads, documents named like
images, huge scans and hostile files. Decoding never runs an external program (PIL's
EPS reader would), refuses decompression bombs by their declared size before any
pixel is decoded, and is safe to call from several threads at once.
"""

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# PIL's EPS reader runs Ghostscript on the file; holdings may be hostile, so no file
# is ever handed to an external program.
_FORMATS_RUNNING_PROGRAMS = frozenset({"EPS"})
# PIL's own default limit (about 89 megapixels), checked here before decoding.
DEFAULT_MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
_MODES = {1: "L", 3: "RGB"}
# What cameras, phones and the web write, most common first.
_COMMON_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF", "MPO")


class UnreadableImage(ValueError):
    """A file that holds no usable image; `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_image(path: Path, channels: int, image_size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One file as uint8 [channels, image_size, image_size]; else `UnreadableImage`."""
    try:
        if path.stat().st_size == 0:
            raise UnreadableImage("empty file")
        with path.open("rb") as stream:
            return fit_pixels(_decode(stream, image_size, max_pixels), channels, image_size)
    except (PermissionError, FileNotFoundError, IsADirectoryError) as err:
        raise UnreadableImage("cannot be read") from err


def decode_image(data: bytes, channels: int, image_size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes already read (e.g. for hashing) as uint8 [channels, image_size, image_size]."""
    return fit_pixels(decode_upright(data, image_size, max_pixels), channels, image_size)


def decode_upright(data: bytes, min_side: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Bytes already read as an upright RGB or greyscale picture, decoded at the smallest scale the
    format offers (JPEG: 1/2, 1/4, 1/8) that keeps both sides at least `min_side`.

    One decode serves every later use of the picture (the model's input, its perceptual hash).
    """
    if not data:
        raise UnreadableImage("empty file")
    return _decode(io.BytesIO(data), min_side, max_pixels)


def fit_pixels(picture: Image.Image, channels: int, image_size: int) -> np.ndarray:
    """A picture cropped to a centred square and scaled, as uint8 [channels, image_size, image_size].

    Scaling down by more than twice first averages whole blocks of pixels (Pillow's
    `reducing_gap`), then resamples: as sharp, and several times cheaper for large pictures.
    """
    square = _centred_square(picture.size)
    mode = _MODES[channels]
    converted = picture if picture.mode == mode else picture.convert(mode)
    fitted = converted.resize((image_size, image_size), Image.Resampling.BICUBIC, box=square, reducing_gap=2.0)
    pixels = np.asarray(fitted, dtype=np.uint8)
    if pixels.ndim == 2:
        return pixels[np.newaxis].copy()
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _centred_square(size: tuple[int, int]) -> tuple[float, float, float, float]:
    width, height = size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


def _decode(stream: io.IOBase, min_side: int, max_pixels: int) -> Image.Image:
    try:
        with Image.open(stream, formats=_safe_formats()) as opened:
            width, height = opened.size
            if width * height > max_pixels:
                raise UnreadableImage("image too large (decompression bomb guard)")
            mode = "L" if opened.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            opened.draft(mode, (min_side, min_side))  # JPEG: decode at a reduced scale
            opened.load()
            ImageOps.exif_transpose(opened, in_place=True)
            return opened.convert(mode) if opened.mode != mode else opened
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as err:
        raise UnreadableImage("image too large (decompression bomb guard)") from err
    except UnidentifiedImageError as err:
        raise UnreadableImage("not an image") from err
    except Exception as err:  # noqa: BLE001 - any decoder failure means this one file is unusable
        raise UnreadableImage("truncated or corrupt image") from err


@functools.cache
def _safe_formats() -> tuple[str, ...]:
    """Every format PIL reads but those running programs, the common ones first: PIL tries
    them in this order, and a format with no quick signature check parses a file to refuse it."""
    Image.init()
    safe = [name for name in Image.OPEN if name not in _FORMATS_RUNNING_PROGRAMS]
    return tuple(
        sorted(
            safe,
            key=lambda name: (
                name not in _COMMON_FORMATS,
                _COMMON_FORMATS.index(name) if name in _COMMON_FORMATS else 0,
            ),
        )
    )
