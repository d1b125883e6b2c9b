"""Public datasets' array files are read as data, never run, and never trusted for their size."""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets.mnist import read_image_file

from media.dataset_files import UnreadableDataFile, read_cifar_batch, read_idx
from tests.support.public_datasets import write_cifar10, write_idx, write_python2_pickle


class _RunsAProgram:
    """What a hostile 'batch' holds: unpickling it would call os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return os.system, (f"touch {self.marker}",)


def test_the_tiny_copies_hold_what_the_readers_torchvision_itself_uses_find(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_1").open("rb") as stream:
        as_torchvision_reads_it = pickle.load(stream, encoding="latin1")  # our own file, so safe here
    images, labels = read_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_1")
    assert np.array_equal(as_torchvision_reads_it["data"].reshape(-1, 3, 32, 32), images)
    assert as_torchvision_reads_it["labels"] == labels.tolist() == written.labels[:6].tolist()

    pixels = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    write_idx(tmp_path / "images-idx3-ubyte", pixels, gzipped=False)
    assert np.array_equal(read_image_file(str(tmp_path / "images-idx3-ubyte")).numpy(), pixels)
    assert np.array_equal(read_idx(tmp_path / "images-idx3-ubyte"), pixels)


def test_an_idx_file_reads_the_same_gzipped_or_not(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "plain", pixels, gzipped=False)
    write_idx(tmp_path / "packed.gz", pixels, gzipped=True)
    assert np.array_equal(read_idx(tmp_path / "plain"), pixels)
    assert np.array_equal(read_idx(tmp_path / "packed.gz"), pixels)


def test_idx_numbers_wider_than_a_byte_come_back_in_the_machines_byte_order(tmp_path: Path) -> None:
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    (tmp_path / "ints").write_bytes(struct.pack(">HBBII", 0, 0x0C, 2, 2, 2) + values.tobytes())
    read = read_idx(tmp_path / "ints")
    assert read.dtype.isnative and read.tolist() == [[1, -2], [70000, 3]]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (struct.pack(">HBBI", 0, 0x08, 1, 10) + bytes(4), "truncated: its data ends after 4 of 10 bytes"),
        (struct.pack(">HBBI", 0, 0x08, 1, 2) + bytes(3), "more data than its header declares"),
        (struct.pack(">HBB", 0, 0x42, 1), "not an IDX file"),
        (b"\x89PNG\r\n\x1a\n", "not an IDX file"),
        (b"", "truncated: its header ends after 0 of 4 bytes"),
    ],
)
def test_a_malformed_idx_file_says_what_is_wrong(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(UnreadableDataFile, match=reason):
        read_idx(tmp_path / "bad")


def test_an_idx_header_promising_more_than_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    # A gzip bomb's header: 4 x 65536 x 65536 bytes declared, a few bytes of data behind it.
    (tmp_path / "bomb.gz").write_bytes(gzip.compress(struct.pack(">HBBIII", 0, 0x08, 3, 4, 65536, 65536)))
    with pytest.raises(UnreadableDataFile, match="declares 17,179,869,184 bytes, more than"):
        read_idx(tmp_path / "bomb.gz")


def test_a_broken_gzip_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    content = struct.pack(">HBBI", 0, 0x08, 1, 5000) + np.random.default_rng(0).bytes(5000)
    (tmp_path / "broken.gz").write_bytes(gzip.compress(content)[:-300])
    with pytest.raises(UnreadableDataFile, match="unreadable|truncated"):
        read_idx(tmp_path / "broken.gz")


def test_a_pickle_that_would_run_a_program_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = tmp_path / "data_batch_1"
    hostile.write_bytes(pickle.dumps({"data": _RunsAProgram(marker), "labels": [0]}, protocol=2))
    with pytest.raises(UnreadableDataFile, match=r"refused: it asks to run posix\.system"):
        read_cifar_batch(hostile)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (["not", "a", "dict"], "holds a list, not a dict"),
        ({"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]}, "'data' is not uint8 rows of 3072 pixels"),
        ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, "'data' is not uint8 rows of 3072 pixels"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "'labels' are not 2 whole numbers"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0, "cat"]}, "'labels' are not 2 whole numbers"),
    ],
)
def test_a_pickle_that_is_no_cifar_batch_says_what_is_wrong(tmp_path: Path, content: object, reason: str) -> None:
    path = tmp_path / "data_batch_1"
    if isinstance(content, dict):
        write_python2_pickle(path, content)
    else:
        path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(UnreadableDataFile, match=reason):
        read_cifar_batch(path)


def test_a_truncated_cifar_batch_is_malformed_not_a_crash(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UnreadableDataFile, match="not a CIFAR batch \\(the pickle is malformed"):
        read_cifar_batch(path)
