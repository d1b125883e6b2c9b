"""Turning one untrusted file into pixels, or into the reason it cannot be used.

Holdings folders and seized media alike hold broken downloads, documents named like
images, huge scans and hostile files. Decoding never runs an external program (PIL's
EPS reader would), refuses decompression bombs by their declared size before any
pixel is decoded, and is safe to call from several threads at once.
"""

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
            return _decode(stream, channels, image_size, max_pixels)
    except (PermissionError, FileNotFoundError, IsADirectoryError) as err:
        raise UnreadableImage("cannot be read") from err


def decode_image(data: bytes, channels: int, image_size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bytes already read (e.g. for hashing) as uint8 [channels, image_size, image_size]."""
    if not data:
        raise UnreadableImage("empty file")
    return _decode(io.BytesIO(data), channels, image_size, max_pixels)


def _decode(stream: io.IOBase, channels: int, image_size: int, max_pixels: int) -> np.ndarray:
    mode = _MODES[channels]
    try:
        with Image.open(stream, formats=_safe_formats()) as opened:
            width, height = opened.size
            if width * height > max_pixels:
                raise UnreadableImage("image too large (decompression bomb guard)")
            opened.draft(mode, (image_size, image_size))  # JPEG: decode at a reduced scale
            opened.load()
            upright = ImageOps.exif_transpose(opened)
            fitted = ImageOps.fit(upright.convert(mode), (image_size, image_size))
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as err:
        raise UnreadableImage("image too large (decompression bomb guard)") from err
    except UnidentifiedImageError as err:
        raise UnreadableImage("not an image") from err
    except Exception as err:  # noqa: BLE001 - any decoder failure means this one file is unusable
        raise UnreadableImage("truncated or corrupt image") from err
    pixels = np.asarray(fitted, dtype=np.uint8)
    if pixels.ndim == 2:
        return pixels[np.newaxis].copy()
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _safe_formats() -> list[str]:
    Image.init()
    return [name for name in Image.OPEN if name not in _FORMATS_RUNNING_PROGRAMS]
