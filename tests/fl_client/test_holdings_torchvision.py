"""Public datasets as holdings: tiny copies in each dataset's own format load like the real files."""

import pickle
import socket
import string
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fedtriage.errors import ConfigError
from fl_client.holdings import HoldingsError, load_holdings, simulated_node_holdings
from fl_protocol.run_config import load_settings
from fl_protocol.settings import RunSettings
from tests.support.public_datasets import write_cifar10, write_emnist, write_fashion_mnist

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def settings(root: Path, *overrides: str) -> RunSettings:
    return load_settings(["holdings=torchvision", f"holdings.root={root}", *overrides])


def test_cifar10_loads_every_training_batch_with_its_pixels_labels_and_class_names(tmp_path: Path) -> None:
    written = write_cifar10(tmp_path, per_batch=6)
    holdings = load_holdings(settings(tmp_path).holdings)
    assert holdings.classes == tuple(CIFAR10_CLASSES)
    assert tuple(holdings.images.shape) == (30, 3, 32, 32)  # five batches of 6; test_batch left out
    assert np.array_equal(holdings.images.numpy(), written.images)
    assert holdings.labels.tolist() == written.labels.tolist()
    assert holdings.report.loaded == 30 and holdings.report.skipped == []
    assert sum(holdings.report.class_counts.values()) == 30
    assert holdings.report.summary() == f"CIFAR-10 {tmp_path}: 30 images loaded, 0 skipped"


def test_a_run_names_the_datasets_classes_before_any_file_is_read(tmp_path: Path) -> None:
    # The coordinator builds the model from holdings.classes: a dataset's names need no files.
    assert settings(tmp_path / "not-there-yet").holdings.classes == CIFAR10_CLASSES
    fashion = settings(tmp_path, "holdings.dataset=fashion_mnist").holdings.classes
    assert fashion is not None and fashion[0] == "T-shirt/top" and len(fashion) == 10
    balanced = settings(tmp_path, "holdings.dataset=emnist").holdings.classes
    assert balanced is not None and len(balanced) == 47 and balanced[:11] == [*string.digits, "A"]
    assert settings(tmp_path, "holdings.dataset=emnist", "holdings.emnist_split=byclass").holdings.classes == [
        *string.digits, *string.ascii_uppercase, *string.ascii_lowercase
    ]


@pytest.mark.parametrize("gzipped", [True, False], ids=["as-downloaded", "unpacked"])
def test_fashion_mnist_loads_gzipped_or_unpacked_at_its_native_size(tmp_path: Path, gzipped: bool) -> None:
    written = write_fashion_mnist(tmp_path, count=40, gzipped=gzipped)
    holdings = load_holdings(
        settings(tmp_path, "holdings.dataset=fashion_mnist", "holdings.image_size=28", "holdings.channels=1").holdings
    )
    assert tuple(holdings.images.shape) == (40, 1, 28, 28)
    assert np.array_equal(holdings.images[:, 0].numpy(), written.images)
    assert holdings.labels.tolist() == written.labels.tolist()
    assert holdings.classes[9] == "Ankle boot"


def test_emnist_letters_count_from_a_and_images_are_turned_upright(tmp_path: Path) -> None:
    # EMNIST's files number the letters 1..26 and store every image transposed.
    written = write_emnist(tmp_path, "letters", labels=range(1, 27), count=40)
    holdings = load_holdings(
        settings(
            tmp_path, "holdings.dataset=emnist", "holdings.emnist_split=letters",
            "holdings.image_size=28", "holdings.channels=1",
        ).holdings
    )
    assert holdings.classes == tuple(string.ascii_lowercase)
    assert holdings.labels.tolist() == (written.labels - 1).tolist()
    assert np.array_equal(holdings.images[:, 0].numpy(), written.images.transpose(0, 2, 1))


def test_the_emnist_split_chooses_which_files_are_read(tmp_path: Path) -> None:
    write_emnist(tmp_path, "digits", labels=range(10), count=12, seed=1)
    written = write_emnist(tmp_path, "balanced", labels=range(47), count=20, seed=2)
    holdings = load_holdings(settings(tmp_path, "holdings.dataset=emnist").holdings)  # balanced by default
    assert len(holdings) == 20 and len(holdings.classes) == 47
    assert holdings.labels.tolist() == written.labels.tolist()
    digits = load_holdings(settings(tmp_path, "holdings.dataset=emnist", "holdings.emnist_split=digits").holdings)
    assert len(digits) == 12 and digits.classes == tuple(string.digits)


def test_grey_datasets_fit_a_colour_model_and_colour_ones_a_grey_model(tmp_path: Path) -> None:
    fashion = write_fashion_mnist(tmp_path, count=8)
    colour = load_holdings(settings(tmp_path, "holdings.dataset=fashion_mnist").holdings)  # 32 x 32 x 3
    assert tuple(colour.images.shape) == (8, 3, 32, 32)
    assert all(np.array_equal(colour.images[:, 0], colour.images[:, channel]) for channel in (1, 2))
    assert not np.array_equal(colour.images[:, 0, 2:30, 2:30].numpy(), fashion.images)  # resized, not padded

    cifar = write_cifar10(tmp_path, per_batch=2)
    grey = load_holdings(settings(tmp_path, "holdings.channels=1").holdings)
    assert tuple(grey.images.shape) == (10, 1, 32, 32)
    first = Image.fromarray(cifar.images[0].transpose(1, 2, 0), "RGB").convert("L")
    assert np.array_equal(grey.images[0, 0].numpy(), np.asarray(first))  # grey as Pillow makes it


def test_renamed_classes_keep_the_datasets_label_order(tmp_path: Path) -> None:
    written = write_fashion_mnist(tmp_path, count=10)
    names = [f"c{index}" for index in range(10)]
    holdings = load_holdings(
        settings(tmp_path, "holdings.dataset=fashion_mnist", f"holdings.classes=[{','.join(names)}]").holdings
    )
    assert holdings.classes == tuple(names) and holdings.labels.tolist() == written.labels.tolist()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (["holdings.classes=[a,b]"], "holdings.classes: cifar10 has 10 classes, got 2 names"),
        (["holdings.dataset=cifar100"], "holdings.dataset: unknown value 'cifar100'; choose one of cifar10, "),
        (["holdings.dataset=emnist", "holdings.emnist_split=mixed"], "holdings.emnist_split: unknown value 'mixed'"),
        (["holdings.download=maybe"], "holdings.download: Value 'maybe' is not a valid bool"),
    ],
)
def test_a_bad_torchvision_setting_names_itself(tmp_path: Path, overrides: list[str], error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        settings(tmp_path, *overrides)
    assert str(raised.value).startswith(error)


def test_a_root_without_the_files_says_which_files_were_expected_where_and_how_to_fetch_them(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path)  # another dataset's files are no CIFAR-10
    with pytest.raises(HoldingsError) as raised:
        load_holdings(settings(tmp_path).holdings)
    assert raised.value.key == "holdings.root"
    assert str(raised.value) == (
        f"holdings.root: {tmp_path} does not hold CIFAR-10's training files: expected data_batch_1, data_batch_2, "
        f"data_batch_3, data_batch_4, data_batch_5 in {tmp_path / 'cifar-10-batches-py'}, as torchvision lays them "
        "out; holdings.download=true fetches them there"
    )
    letters = settings(tmp_path / "missing", "holdings.dataset=emnist", "holdings.emnist_split=letters")
    with pytest.raises(HoldingsError, match=f"{tmp_path / 'missing'} does not exist: expected emnist-letters-train"):
        load_holdings(letters.holdings)


def test_without_a_root_the_error_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holdings.root: required for source 'torchvision': the folder holding "
                                          "CIFAR-10's cifar-10-batches-py/"):
        load_holdings(load_settings(["holdings=torchvision"]).holdings)


def test_download_true_reads_files_already_there_and_fetches_nothing(tmp_path: Path) -> None:
    # torchvision would check these files' MD5s, find them not the real ones and fetch again:
    # with no network here, that would fail. Files on disk are read as they are.
    written = write_cifar10(tmp_path, per_batch=2)
    holdings = load_holdings(settings(tmp_path, "holdings.download=true").holdings)
    assert holdings.labels.tolist() == written.labels.tolist()


def test_download_true_asks_torchvision_to_fetch_missing_files_and_a_failure_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("no network in tests")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)  # whatever the machine, nothing leaves it
    monkeypatch.setattr(socket.socket, "connect", no_network)
    root = tmp_path / "datasets"
    with pytest.raises(HoldingsError) as raised:
        load_holdings(settings(root, "holdings.dataset=fashion_mnist", "holdings.download=true").holdings)
    assert str(raised.value).startswith(f"holdings.download: fetching Fashion-MNIST into {root} failed: ")
    assert (root / "FashionMNIST" / "raw").is_dir()  # torchvision's own layout, begun by torchvision


def test_a_batch_that_would_run_code_is_refused_naming_the_file(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=2)
    hostile = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    hostile.write_bytes(pickle.dumps({"data": Path("/"), "labels": []}, protocol=2))
    with pytest.raises(HoldingsError) as raised:
        load_holdings(settings(tmp_path).holdings)
    assert str(raised.value) == f"holdings.root: {hostile}: refused: it asks to run pathlib.PosixPath, which a CIFAR " \
        "batch never does"


def test_a_truncated_file_is_an_error_naming_it(tmp_path: Path) -> None:
    write_fashion_mnist(tmp_path, count=10, gzipped=False)
    labels = tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-3])
    with pytest.raises(HoldingsError, match=f"holdings.root: {labels}: truncated: its data ends after 7 of 10 bytes"):
        load_holdings(settings(tmp_path, "holdings.dataset=fashion_mnist").holdings)


def test_labels_beyond_the_datasets_classes_are_refused(tmp_path: Path) -> None:
    write_emnist(tmp_path, "letters", labels=range(0, 27), count=60)  # 0 is no letter
    with pytest.raises(HoldingsError, match=r"has labels outside 1\.\.26: \[0\]"):
        load_holdings(settings(tmp_path, "holdings.dataset=emnist", "holdings.emnist_split=letters").holdings)


def test_simulated_nodes_share_the_pool_of_a_public_dataset(tmp_path: Path) -> None:
    write_cifar10(tmp_path, per_batch=12)
    run = settings(tmp_path, "federation.num_nodes=3")
    nodes = [simulated_node_holdings(run.for_nodes(), partition_id, 3) for partition_id in range(3)]
    held = sum(len(node.train) + len(node.val) for node in nodes)
    assert held == 60 - round(60 * run.holdings.test_fraction)
    assert all(node.train.classes == tuple(CIFAR10_CLASSES) for node in nodes)
