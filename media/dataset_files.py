"""The public datasets' own array files, read without trusting them.

torchvision keeps the MNIST family as IDX files (often gzipped) and CIFAR as pickled
Python batches. Unpickling runs whatever callables a file names, so a CIFAR batch is read
by an unpickler that can build numpy arrays and nothing else. An IDX header declares the
array's size, so a gzip bomb or a header promising gigabytes is refused before the data
is read, and a truncated or padded file is refused rather than reshaped into nonsense.
"""

import gzip
import math
import pickle
import struct
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

# The largest file of these datasets (EMNIST byclass's training images) holds 547 MB of pixels.
MAX_ARRAY_BYTES = 1 << 30
# A CIFAR-10 batch is 31 MB; nothing near this limit is a batch.
MAX_BATCH_FILE_BYTES = 256 << 20
_GZIP_MAGIC = b"\x1f\x8b"
# IDX element types by their code in the header; IDX stores numbers big-endian.
_IDX_TYPES = {
    0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}  # fmt: skip
_MAX_IDX_DIMENSIONS = 8
_CIFAR_SHAPE = (3, 32, 32)
# What pickling a numpy array refers to: its reconstructor (numpy 1 and 2 spell its
# module differently), the array type and the dtype. A batch refers to nothing else.
_RECONSTRUCT = np.empty(0).__reduce__()[0]
_ARRAY_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class UnreadableDataFile(ValueError):
    """A dataset file that is not what its name says; `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_idx(path: Path, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    """An IDX file, gzip-compressed or not, as a native-endian numpy array of its declared shape."""
    try:
        with _open_maybe_gzip(path) as stream:
            zero, type_code, dimensions = struct.unpack(">HBB", _read_exactly(stream, 4, "header"))
            dtype = _IDX_TYPES.get(type_code)
            if zero != 0 or dtype is None or not 1 <= dimensions <= _MAX_IDX_DIMENSIONS:
                raise UnreadableDataFile("not an IDX file (its header names no known element type and shape)")
            shape = struct.unpack(f">{dimensions}I", _read_exactly(stream, 4 * dimensions, "shape"))
            size = math.prod(shape) * dtype.itemsize
            if size > max_bytes:
                raise UnreadableDataFile(f"its header declares {size:,} bytes, more than the {max_bytes:,} allowed")
            data = _read_exactly(stream, size, "data")
            if stream.read(1):
                raise UnreadableDataFile("it holds more data than its header declares")
    except (OSError, EOFError, zlib.error) as err:
        raise UnreadableDataFile(f"unreadable ({err})") from err
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR python batch: uint8 images [N, 3, 32, 32] and int64 labels [N]."""
    try:
        if path.stat().st_size > MAX_BATCH_FILE_BYTES:
            raise UnreadableDataFile(f"larger than the {MAX_BATCH_FILE_BYTES:,} bytes a CIFAR batch can be")
        with path.open("rb") as stream:
            # Python 2 wrote the batches; latin1 gives back its byte strings unchanged.
            batch = _ArraysOnlyUnpickler(stream, encoding="latin1").load()
    except UnreadableDataFile:
        raise
    except _Refused as refused:
        raise UnreadableDataFile(str(refused)) from None
    except OSError as err:
        raise UnreadableDataFile(f"unreadable ({err.strerror or err})") from err
    except Exception as err:  # a malformed pickle fails in many ways; each means the same
        raise UnreadableDataFile(f"not a CIFAR batch (the pickle is malformed: {err})") from err
    if not isinstance(batch, dict):
        raise UnreadableDataFile(f"not a CIFAR batch (it holds a {type(batch).__name__}, not a dict)")
    data, labels = batch.get("data"), batch.get("labels")
    pixels = math.prod(_CIFAR_SHAPE)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        raise UnreadableDataFile(f"not a CIFAR batch (its 'data' is not uint8 rows of {pixels} pixels)")
    if not isinstance(labels, list) or len(labels) != len(data) or not all(type(label) is int for label in labels):
        raise UnreadableDataFile(f"not a CIFAR batch (its 'labels' are not {len(data)} whole numbers)")
    return data.reshape(-1, *_CIFAR_SHAPE), np.asarray(labels, dtype=np.int64)


class _Refused(pickle.UnpicklingError):
    """The pickle asked for something other than a numpy array."""


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and numpy arrays; any other callable is refused."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ARRAY_GLOBALS.get((module, name))
        if found is None:
            raise _Refused(f"refused: it asks to run {module}.{name}, which a CIFAR batch never does")
        return found


def _open_maybe_gzip(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        compressed = probe.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if compressed else path.open("rb")


def _read_exactly(stream: IO[bytes], size: int, part: str) -> bytearray:
    """`size` bytes, read in place (a writable buffer numpy and torch take without copying)."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    filled = 0
    while filled < size:
        count = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not count:
            raise UnreadableDataFile(f"truncated: its {part} ends after {filled} of {size:,} bytes")
        filled += count
    return buffer
