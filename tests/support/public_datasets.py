"""Tiny copies of public datasets, written in each dataset's own on-disk format and layout.

Tests never download: these copies hold a few dozen random images, laid out and encoded
as torchvision leaves the real files (CIFAR-10's Python 2 pickles, the MNIST family's
IDX files, gzipped or unpacked), so the loaders read them as they read the real ones.
"""

import gzip
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_RECONSTRUCT = np.empty(0).__reduce__()[0]


@dataclass
class WrittenSet:
    """The training images and labels a copy holds, in file order, as the files hold them."""

    images: np.ndarray
    labels: np.ndarray


def write_cifar10(root: Path, per_batch: int = 6, seed: int = 0) -> WrittenSet:
    """`<root>/cifar-10-batches-py/` with data_batch_1..5, test_batch and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for name in [f"data_batch_{number}" for number in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)
        batch_labels = [int(label) for label in rng.integers(0, 10, size=per_batch)]
        write_python2_pickle(folder / name, {
            "batch_label": f"{name} of 6",
            "labels": batch_labels,
            "data": data,
            "filenames": [f"image_{index}.png" for index in range(per_batch)],
        })  # fmt: skip
        if name != "test_batch":
            images.append(data.reshape(-1, 3, 32, 32))
            labels.extend(batch_labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_python2_pickle(
        folder / "batches.meta", {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072}
    )
    return WrittenSet(np.concatenate(images), np.asarray(labels, dtype=np.int64))


def write_fashion_mnist(root: Path, count: int = 40, gzipped: bool = True, seed: int = 0) -> WrittenSet:
    """`<root>/FashionMNIST/raw/` with the training and t10k IDX files."""
    return _write_mnist_family(root / "FashionMNIST" / "raw", "", count, range(10), gzipped, seed)


def write_emnist(root: Path, split: str, labels: range, count: int = 40, gzipped: bool = False,
                 seed: int = 0) -> WrittenSet:
    """`<root>/EMNIST/raw/emnist-<split>-*`, with labels drawn from `labels` (letters count from 1)."""
    return _write_mnist_family(root / "EMNIST" / "raw", f"emnist-{split}-", count, labels, gzipped, seed)


def write_idx(path: Path, array: np.ndarray, gzipped: bool) -> None:
    """`array` (uint8) as an IDX file: zero, type 0x08, dimensions, big-endian sizes, the bytes."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(content) if gzipped else content)


def write_python2_pickle(path: Path, content: dict[str, Any]) -> None:
    """`content` pickled as Python 2 wrote CIFAR's batches: protocol 2, numpy's reconstructor named
    `numpy.core.multiarray._reconstruct`, arrays' bytes as strings (what Python 2's byte strings
    read back as under `encoding="latin1"`)."""
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(content)
    here = f"c{_RECONSTRUCT.__module__}\n_reconstruct\n".encode()
    path.write_bytes(buffer.getvalue().replace(here, b"cnumpy.core.multiarray\n_reconstruct\n"))


def _write_mnist_family(
    folder: Path, prefix: str, count: int, labels: range, gzipped: bool, seed: int
) -> WrittenSet:
    rng = np.random.default_rng(seed)
    written = None
    for part in ("train", "t10k" if not prefix else "test"):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        drawn = rng.integers(labels.start, labels.stop, size=count).astype(np.uint8)
        suffix = ".gz" if gzipped else ""
        write_idx(folder / f"{prefix}{part}-images-idx3-ubyte{suffix}", images, gzipped)
        write_idx(folder / f"{prefix}{part}-labels-idx1-ubyte{suffix}", drawn, gzipped)
        written = written or WrittenSet(images, drawn.astype(np.int64))
    assert written is not None
    return written


class _Python2Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            state = (1, obj.shape, obj.dtype, False, obj.tobytes().decode("latin1"))
            return _RECONSTRUCT, (np.ndarray, (0,), "b"), state
        return NotImplemented
