"""What a node needs to know of a run: holdings, model, local training, the federation's size.

Each schema gives part of the YAML under `configs/` its types; each `check_*` checks the
ranges the types cannot express and raises `ConfigError` naming the key.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from configs.compose import one_of, path_field, require
from fedtriage.errors import ConfigError
from fl_protocol.settings.public_datasets import EMNIST_SPLITS, TORCHVISION_DATASETS, dataset_classes

HOLDINGS_SOURCES = ("digits", "folder", "synthetic", "vics", "torchvision")
PARTITION_SCHEMES = ("iid", "dirichlet", "shards")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("cpu", "cuda", "auto")
IMAGE_FORMATS = ("png", "jpeg", "mixed")


@dataclass
class SyntheticSettings:
    """How the synthetic holdings generator fills the holdings folder."""

    images_per_class: int
    image_format: str


@dataclass
class HoldingsSettings:
    """Where a node's images come from and how they are shaped for the model."""

    source: str
    image_size: int
    channels: int
    test_fraction: float
    val_fraction: float
    synthetic: SyntheticSettings
    path: str | None = path_field()
    classes: list[str] | None = None
    # Source "vics": the folder the case's RelativeFilePaths start from; null: the case file's folder.
    vics_root: str | None = path_field()
    # Source "vics": the VICS Category code of each class in `classes`, in the same order.
    vics_categories: list[int] | None = None
    # Source "torchvision": which public dataset, the folder its files are in, whether to fetch
    # them when missing, and EMNIST's split (set in configs/holdings/torchvision.yaml).
    dataset: str | None = None
    root: str | None = path_field()
    download: bool = False
    emnist_split: str | None = None


@dataclass
class PartitionSettings:
    """How simulation splits the federated pool across nodes (a simulated node takes its share)."""

    scheme: str
    alpha: float
    labels_per_node: int
    min_samples_per_node: int


@dataclass
class ModelSettings:
    """A model from the zoo and its constructor parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    weights_path: str | None = path_field()


@dataclass
class TrainSettings:
    """Local training on each node."""

    local_epochs: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    device: str
    threads: int


@dataclass
class FederationSettings:
    """Nodes, rounds, sampling and the waits that keep a federation from hanging."""

    num_nodes: int
    num_rounds: int
    fraction_train: float
    fraction_evaluate: float
    min_train_nodes: int
    min_evaluate_nodes: int
    min_available_nodes: int
    node_wait_timeout_s: float
    round_timeout_s: float
    max_consecutive_failed_rounds: int
    reply_object_retry_s: float


def check_holdings(hold: HoldingsSettings) -> None:
    """`holdings.path` is checked where it is read (a simulation, central evaluation): a deployed
    node takes its path from its own node config, so a coordinator's run config has none."""
    one_of(hold.source, HOLDINGS_SOURCES, "holdings.source")
    if hold.source == "vics":
        _check_vics_holdings(hold)
    if hold.source == "torchvision":
        _check_torchvision_holdings(hold)
    require(hold.image_size >= 4, "holdings.image_size", f"must be >= 4, got {hold.image_size}")
    require(hold.channels in (1, 3), "holdings.channels", f"must be 1 or 3, got {hold.channels}")
    require(0.0 <= hold.test_fraction < 1.0, "holdings.test_fraction", f"must be in [0, 1), got {hold.test_fraction}")
    require(0.0 <= hold.val_fraction < 1.0, "holdings.val_fraction", f"must be in [0, 1), got {hold.val_fraction}")
    if hold.classes is not None:
        require(len(hold.classes) >= 2, "holdings.classes", f"needs at least 2 classes, got {hold.classes}")
        require(len(set(hold.classes)) == len(hold.classes), "holdings.classes", "names must be unique")
    one_of(hold.synthetic.image_format, IMAGE_FORMATS, "holdings.synthetic.image_format")
    require(hold.synthetic.images_per_class >= 0, "holdings.synthetic.images_per_class", "must be >= 0")


def _check_vics_holdings(hold: HoldingsSettings) -> None:
    """A VICS case is labelled by Category codes: one distinct code per named class."""
    if not hold.classes:
        raise ConfigError("holdings.classes", "required for source 'vics' (the class names, in label order)")
    codes = hold.vics_categories
    if codes is None:
        raise ConfigError(
            "holdings.vics_categories", "required for source 'vics' (the VICS Category code of each class)"
        )
    require(
        len(codes) == len(hold.classes),
        "holdings.vics_categories",
        f"needs one category code per class: {len(codes)} codes for {len(hold.classes)} classes",
    )
    require(len(set(codes)) == len(codes), "holdings.vics_categories", f"codes must be distinct, got {codes}")
    require(all(code >= 0 for code in codes), "holdings.vics_categories", f"codes must be >= 0, got {codes}")


def _check_torchvision_holdings(hold: HoldingsSettings) -> None:
    """A known dataset (and EMNIST split); renamed classes keep the dataset's count."""
    if hold.dataset is None:
        raise ConfigError(
            "holdings.dataset", f"required for source 'torchvision': one of {', '.join(TORCHVISION_DATASETS)}"
        )
    one_of(hold.dataset, TORCHVISION_DATASETS, "holdings.dataset")
    if hold.dataset == "emnist":
        one_of(str(hold.emnist_split), EMNIST_SPLITS, "holdings.emnist_split")
    if hold.classes is not None:
        named = dataset_classes(hold.dataset, hold.emnist_split)
        require(
            len(hold.classes) == len(named),
            "holdings.classes",
            f"{_dataset_title(hold)} has {len(named)} classes, got {len(hold.classes)} names "
            "(leave it null for the dataset's own names)",
        )


def with_dataset_classes(hold: HoldingsSettings) -> HoldingsSettings:
    """`hold`, with a public dataset's own class names where none are given (checked settings only).

    The coordinator builds the model from `holdings.classes`; a dataset's names are known
    without reading its files, so a run names them before any node loads anything.
    """
    if hold.source != "torchvision" or hold.classes is not None or hold.dataset is None:
        return hold
    return dataclasses.replace(hold, classes=list(dataset_classes(hold.dataset, hold.emnist_split)))


def _dataset_title(hold: HoldingsSettings) -> str:
    return f"emnist {hold.emnist_split}" if hold.dataset == "emnist" else str(hold.dataset)


def check_partition(part: PartitionSettings) -> None:
    one_of(part.scheme, PARTITION_SCHEMES, "partition.scheme")
    require(part.alpha > 0, "partition.alpha", f"must be > 0, got {part.alpha}")
    require(part.labels_per_node >= 1, "partition.labels_per_node", f"must be >= 1, got {part.labels_per_node}")
    require(part.min_samples_per_node >= 1, "partition.min_samples_per_node", "must be >= 1")


def check_train(train: TrainSettings) -> None:
    one_of(train.optimizer, OPTIMIZERS, "train.optimizer")
    one_of(train.device, DEVICES, "train.device")
    require(train.local_epochs >= 1, "train.local_epochs", f"must be >= 1, got {train.local_epochs}")
    require(train.batch_size >= 1, "train.batch_size", f"must be >= 1, got {train.batch_size}")
    require(train.lr > 0, "train.lr", f"must be > 0, got {train.lr}")
    require(train.threads >= 1, "train.threads", f"must be >= 1, got {train.threads}")


def check_federation(fed: FederationSettings) -> None:
    require(fed.num_nodes >= 1, "federation.num_nodes", f"must be >= 1, got {fed.num_nodes}")
    require(fed.num_rounds >= 1, "federation.num_rounds", f"must be >= 1, got {fed.num_rounds}")
    for key in ("fraction_train", "fraction_evaluate"):
        value = getattr(fed, key)
        require(0.0 <= value <= 1.0, f"federation.{key}", f"must be in [0, 1], got {value}")
    require(fed.fraction_train > 0, "federation.fraction_train", "must be > 0: a federation has to train")
    for key in ("min_train_nodes", "min_evaluate_nodes", "min_available_nodes"):
        value = getattr(fed, key)
        require(value >= 1, f"federation.{key}", f"must be >= 1, got {value}")
    require(
        fed.min_train_nodes <= fed.min_available_nodes,
        "federation.min_train_nodes",
        f"{fed.min_train_nodes} exceeds federation.min_available_nodes={fed.min_available_nodes}",
    )
    require(fed.node_wait_timeout_s > 0, "federation.node_wait_timeout_s", "must be > 0")
    require(fed.round_timeout_s > 0, "federation.round_timeout_s", "must be > 0")
    require(0.001 <= fed.reply_object_retry_s <= 1, "federation.reply_object_retry_s",
            f"must be in [0.001, 1] seconds, got {fed.reply_object_retry_s}")
    require(
        fed.max_consecutive_failed_rounds >= 1, "federation.max_consecutive_failed_rounds", "must be >= 1"
    )
