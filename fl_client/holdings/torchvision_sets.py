"""Public datasets (CIFAR-10, Fashion-MNIST, EMNIST) as holdings, from their files laid out as torchvision keeps them.

The files are read here (`media.dataset_files`), not by torchvision: its CIFAR reader
unpickles whatever a file names, and it checks the real files' MD5s, which no smaller
copy passes. torchvision only fetches the files, and only when `holdings.download` asks.
The training files make the pool that simulation holds out from and partitions; images
keep their native size and channels until `image_fitting` fits them to the model's input.
"""

import fcntl
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from fedtriage.errors import ConfigError
from fl_client.holdings.holdings import Holdings, HoldingsError, HoldingsReport, check_image_shape
from fl_client.holdings.image_fitting import fit_images
from fl_protocol.settings import HoldingsSettings
from fl_protocol.settings.public_datasets import dataset_classes
from media.dataset_files import UnreadableDataFile, read_cifar_batch, read_idx

_CIFAR_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6))
# Hidden, beside the dataset's folder: serialises fetches of one root.
_DOWNLOAD_LOCK = ".fedtriage-download.lock"
_Read = TypeVar("_Read")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _TrainingFiles:
    """Where torchvision keeps a dataset's training files under its root, and how they are kept."""

    title: str
    folder: str
    names: tuple[str, ...]
    # IDX files are kept as downloaded (name.gz), unpacked (name), or both.
    idx: bool
    # EMNIST numbers its letters from 1.
    first_label: int = 0
    # EMNIST's files keep every image transposed.
    transposed: bool = False


def load_torchvision_holdings(settings: HoldingsSettings) -> Holdings:
    """The training images of `settings.dataset` under `settings.root`, fetched first if asked and missing."""
    dataset, split = str(settings.dataset), settings.emnist_split
    try:
        native = dataset_classes(dataset, split)
    except KeyError as err:
        raise ConfigError("holdings.dataset", f"no such dataset for source 'torchvision': {err.args[0]}") from err
    files = _training_files(dataset, split)
    if not settings.root:
        raise ConfigError(
            "holdings.root", f"required for source 'torchvision': the folder holding {files.title}'s "
            f"{files.folder}/ (holdings.download=true fetches it there)"
        )
    classes = tuple(settings.classes) if settings.classes is not None else native
    if len(classes) != len(native):
        raise ConfigError("holdings.classes", f"{files.title} has {len(native)} classes, got {len(classes)} names")
    check_image_shape(settings.image_size, settings.channels)

    root = Path(settings.root)
    paths = _present(root, files)
    if paths is None and settings.download:
        paths = _download(dataset, split, root, files)
    if paths is None:
        raise HoldingsError("holdings.root", _missing(root, files))
    images, labels = _read(paths, files)
    labels = _labels_from_zero(labels, files, len(classes), root)

    label_tensor = torch.from_numpy(labels)
    counts = torch.bincount(label_tensor, minlength=len(classes)).tolist()
    report = HoldingsReport(
        source=f"{files.title} {root}",
        loaded=len(labels),
        class_counts={name: int(count) for name, count in zip(classes, counts)},
    )
    pool = fit_images(torch.from_numpy(images), settings.image_size, settings.channels)
    return Holdings(images=pool, labels=label_tensor, classes=classes, report=report)


def _labels_from_zero(labels: np.ndarray, files: _TrainingFiles, num_classes: int, root: Path) -> np.ndarray:
    """The files' labels counted from 0, each naming one of the classes."""
    if len(labels) == 0:
        raise HoldingsError("holdings.root", f"{files.title} in {root / files.folder} holds no images")
    shifted = labels - files.first_label
    outside = (shifted < 0) | (shifted >= num_classes)
    if outside.any():
        first = sorted(set(labels[outside].tolist()))[:5]
        allowed = f"{files.first_label}..{files.first_label + num_classes - 1}"
        raise HoldingsError(
            "holdings.root", f"{files.title} in {root / files.folder} has labels outside {allowed}: {first}"
        )
    return shifted


def _training_files(dataset: str, emnist_split: str | None) -> _TrainingFiles:
    if dataset == "cifar10":
        return _TrainingFiles("CIFAR-10", "cifar-10-batches-py", _CIFAR_BATCHES, idx=False)
    if dataset == "fashion_mnist":
        return _TrainingFiles(
            "Fashion-MNIST", "FashionMNIST/raw", ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), idx=True
        )
    if dataset == "emnist":
        prefix = f"emnist-{emnist_split}-train"
        return _TrainingFiles(
            f"EMNIST {emnist_split}", "EMNIST/raw", (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"),
            idx=True, first_label=1 if emnist_split == "letters" else 0, transposed=True,
        )
    raise ConfigError("holdings.dataset", f"unknown value {dataset!r}")


def _present(root: Path, files: _TrainingFiles) -> list[Path] | None:
    """Each training file as it is on disk (unpacked first), or None when one is missing."""
    found = []
    for name in files.names:
        kept = [root / files.folder / name]
        if files.idx:
            kept.append(root / files.folder / f"{name}.gz")
        path = next((path for path in kept if path.is_file()), None)
        if path is None:
            return None
        found.append(path)
    return found


def _missing(root: Path, files: _TrainingFiles) -> str:
    """Which files were expected where, and how to get them."""
    if not root.exists():
        where = f"{root} does not exist"
    elif not root.is_dir():
        where = f"{root} is not a folder"
    else:
        where = f"{root} does not hold {files.title}'s training files"
    gz = " (or .gz)" if files.idx else ""
    return (
        f"{where}: expected {', '.join(files.names)}{gz} in {root / files.folder}, as torchvision lays them out; "
        "holdings.download=true fetches them there"
    )


def _read(paths: list[Path], files: _TrainingFiles) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, C, H, W] and int64 labels [N], as the files hold them."""
    if not files.idx:
        batches = [_read_file(path, read_cifar_batch) for path in paths]
        return np.concatenate([images for images, _ in batches]), np.concatenate([labels for _, labels in batches])
    images, labels = _read_file(paths[0], read_idx), _read_file(paths[1], read_idx)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise HoldingsError(
            "holdings.root", f"{paths[0]}: holds {images.dtype} {images.shape}, not uint8 [N, H, W] images"
        )
    if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
        raise HoldingsError(
            "holdings.root", f"{paths[1]}: holds {labels.dtype} {labels.shape}, not {len(images)} uint8 labels"
        )
    if files.transposed:
        images = images.transpose(0, 2, 1)
    return np.ascontiguousarray(images[:, np.newaxis]), labels.astype(np.int64)


def _read_file(path: Path, reader: Callable[[Path], _Read]) -> _Read:
    try:
        return reader(path)
    except UnreadableDataFile as unreadable:
        raise HoldingsError("holdings.root", f"{path}: {unreadable.reason}") from unreadable


def _download(dataset: str, emnist_split: str | None, root: Path, files: _TrainingFiles) -> list[Path] | None:
    """Fetch the dataset into `root` with torchvision's own classes (they check the real files' MD5s).

    Processes that load the same holdings at once (a server and its simulated nodes) take
    turns on a lock in `root`: the first fetches, the others find the files there.
    """
    from torchvision import datasets  # on use: only a download needs it

    try:
        root.mkdir(parents=True, exist_ok=True)
        with (root / _DOWNLOAD_LOCK).open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (paths := _present(root, files)) is not None:
                return paths
            logger.warning("fetching %s into %s (holdings.download=true)", files.title, root)
            if dataset == "cifar10":
                datasets.CIFAR10(str(root), train=True, download=True)
            elif dataset == "fashion_mnist":
                datasets.FashionMNIST(str(root), train=True, download=True)
            else:
                datasets.EMNIST(str(root), split=str(emnist_split), train=True, download=True)
    except (OSError, RuntimeError) as err:
        why = " ".join(str(err).split()) or type(err).__name__  # torchvision's messages span lines; ours is one
        raise HoldingsError("holdings.download", f"fetching {files.title} into {root} failed: {why}") from err
    return _present(root, files)
