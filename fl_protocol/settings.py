"""Typed settings of one federation run, read from the resolved Hydra configuration.

The YAML files under `configs/` hold every default; these dataclasses only give the
configuration a schema. `settings_from_mapping` type-checks a resolved config against
the schema (unknown keys and wrong types are errors that name the key) and then checks
ranges, so a bad setting fails before any node trains.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fl_protocol.errors import ConfigError

HOLDINGS_SOURCES = ("digits", "folder", "synthetic")
PARTITION_SCHEMES = ("iid", "dirichlet", "shards")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("cpu", "cuda", "auto")
IMAGE_FORMATS = ("png", "jpeg", "mixed")
UPDATE_PROTECTION_MODES = ("none",)


@dataclass
class SyntheticSettings:
    """How the synthetic holdings generator fills the holdings folder."""

    images_per_class: int = 0
    image_format: str = "png"


@dataclass
class HoldingsSettings:
    """Where a node's images come from and how they are shaped for the model."""

    source: str = MISSING
    path: str | None = None
    classes: list[str] | None = None
    image_size: int = MISSING
    channels: int = MISSING
    test_fraction: float = 0.2
    val_fraction: float = 0.2
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)


@dataclass
class PartitionSettings:
    """How simulation splits the federated pool across nodes."""

    scheme: str = MISSING
    alpha: float = 0.5
    labels_per_node: int = 2
    min_samples_per_node: int = 4


@dataclass
class ModelSettings:
    """A model from the zoo and its constructor parameters."""

    name: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)
    weights_path: str | None = None


@dataclass
class TrainSettings:
    """Local training on each node."""

    local_epochs: int = MISSING
    batch_size: int = MISSING
    optimizer: str = MISSING
    lr: float = MISSING
    momentum: float = 0.0
    weight_decay: float = 0.0
    device: str = "cpu"
    threads: int = 1


@dataclass
class StrategySettings:
    """A strategy of `flwr.serverapp.strategy` and its constructor parameters."""

    name: str = MISSING
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class FederationSettings:
    """Nodes, rounds, sampling and the waits that keep a federation from hanging."""

    num_nodes: int = MISSING
    num_rounds: int = MISSING
    fraction_train: float = 1.0
    fraction_evaluate: float = 1.0
    min_train_nodes: int = 2
    min_evaluate_nodes: int = 2
    min_available_nodes: int = MISSING
    node_wait_timeout_s: float = 120.0
    round_timeout_s: float = 600.0
    max_consecutive_failed_rounds: int = 2


@dataclass
class UpdateProtectionSettings:
    """How model updates are protected on their way to the server."""

    mode: str = MISSING


@dataclass
class TrackingSettings:
    """MLflow tracking, done by the server only."""

    enabled: bool = True
    tracking_uri: str | None = None
    experiment_name: str = "fedtriage"
    run_name: str | None = None
    registered_model_name: str | None = None
    log_model: bool = True
    sweep_id: str | None = None


@dataclass
class EvaluationSettings:
    """Evaluation of the global model by the server."""

    central: bool = True


@dataclass
class CheckpointSettings:
    """Checkpoints written by the server after every round."""

    keep_last: int = 2
    resume_from: str | None = None


@dataclass
class SimulationSettings:
    """Resources of Flower's simulation engine (ignored in deployment)."""

    client_cpus: float = 1.0
    total_cpus: int | None = None
    flower_log_level: str = "WARNING"


@dataclass
class RunSettings:
    """Everything one federation run needs, on the server and on every node."""

    seed: int = MISSING
    output_dir: str | None = None
    holdings: HoldingsSettings = field(default_factory=HoldingsSettings)
    partition: PartitionSettings = field(default_factory=PartitionSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    secure: UpdateProtectionSettings = field(default_factory=UpdateProtectionSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    checkpoint: CheckpointSettings = field(default_factory=CheckpointSettings)
    simulation: SimulationSettings = field(default_factory=SimulationSettings)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-ready), the inverse of `settings_from_mapping`."""
        return asdict(self)


def settings_from_mapping(config: Mapping[str, Any] | Any) -> RunSettings:
    """Type-check a resolved configuration (dict or DictConfig) and return settings.

    Raises `ConfigError` naming the first offending key.
    """
    try:
        schema = OmegaConf.structured(RunSettings)
        merged = OmegaConf.merge(schema, config)
        settings = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        problem = str(err).split("\n", 1)[0]
        raise ConfigError(str(key), problem) from err
    assert isinstance(settings, RunSettings)
    check_ranges(settings)
    return settings


def _require(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(key, problem)


def _one_of(value: str, choices: tuple[str, ...], key: str) -> None:
    _require(value in choices, key, f"unknown value {value!r}; choose one of {', '.join(choices)}")


def check_ranges(settings: RunSettings) -> None:
    """Check values the schema's types cannot express; raise `ConfigError`."""
    hold = settings.holdings
    _one_of(hold.source, HOLDINGS_SOURCES, "holdings.source")
    if hold.source in ("folder", "synthetic"):
        _require(bool(hold.path), "holdings.path", f"required for source {hold.source!r}")
    _require(hold.image_size >= 4, "holdings.image_size", f"must be >= 4, got {hold.image_size}")
    _require(hold.channels in (1, 3), "holdings.channels", f"must be 1 or 3, got {hold.channels}")
    _require(0.0 <= hold.test_fraction < 1.0, "holdings.test_fraction", f"must be in [0, 1), got {hold.test_fraction}")
    _require(0.0 <= hold.val_fraction < 1.0, "holdings.val_fraction", f"must be in [0, 1), got {hold.val_fraction}")
    if hold.classes is not None:
        _require(len(hold.classes) >= 2, "holdings.classes", f"needs at least 2 classes, got {hold.classes}")
        _require(len(set(hold.classes)) == len(hold.classes), "holdings.classes", "names must be unique")
    _one_of(hold.synthetic.image_format, IMAGE_FORMATS, "holdings.synthetic.image_format")
    _require(hold.synthetic.images_per_class >= 0, "holdings.synthetic.images_per_class", "must be >= 0")

    part = settings.partition
    _one_of(part.scheme, PARTITION_SCHEMES, "partition.scheme")
    _require(part.alpha > 0, "partition.alpha", f"must be > 0, got {part.alpha}")
    _require(part.labels_per_node >= 1, "partition.labels_per_node", f"must be >= 1, got {part.labels_per_node}")
    _require(part.min_samples_per_node >= 1, "partition.min_samples_per_node", "must be >= 1")

    train = settings.train
    _one_of(train.optimizer, OPTIMIZERS, "train.optimizer")
    _one_of(train.device, DEVICES, "train.device")
    _require(train.local_epochs >= 1, "train.local_epochs", f"must be >= 1, got {train.local_epochs}")
    _require(train.batch_size >= 1, "train.batch_size", f"must be >= 1, got {train.batch_size}")
    _require(train.lr > 0, "train.lr", f"must be > 0, got {train.lr}")
    _require(train.threads >= 1, "train.threads", f"must be >= 1, got {train.threads}")

    fed = settings.federation
    _require(fed.num_nodes >= 1, "federation.num_nodes", f"must be >= 1, got {fed.num_nodes}")
    _require(fed.num_rounds >= 1, "federation.num_rounds", f"must be >= 1, got {fed.num_rounds}")
    for key in ("fraction_train", "fraction_evaluate"):
        value = getattr(fed, key)
        _require(0.0 <= value <= 1.0, f"federation.{key}", f"must be in [0, 1], got {value}")
    _require(fed.fraction_train > 0, "federation.fraction_train", "must be > 0: a federation has to train")
    for key in ("min_train_nodes", "min_evaluate_nodes", "min_available_nodes"):
        value = getattr(fed, key)
        _require(value >= 1, f"federation.{key}", f"must be >= 1, got {value}")
    _require(
        fed.min_train_nodes <= fed.min_available_nodes,
        "federation.min_train_nodes",
        f"{fed.min_train_nodes} exceeds federation.min_available_nodes={fed.min_available_nodes}",
    )
    _require(fed.node_wait_timeout_s > 0, "federation.node_wait_timeout_s", "must be > 0")
    _require(fed.round_timeout_s > 0, "federation.round_timeout_s", "must be > 0")
    _require(
        fed.max_consecutive_failed_rounds >= 1, "federation.max_consecutive_failed_rounds", "must be >= 1"
    )

    _one_of(settings.secure.mode, UPDATE_PROTECTION_MODES, "secure.mode")
    _require(bool(settings.tracking.experiment_name), "tracking.experiment_name", "must not be empty")
    _require(settings.checkpoint.keep_last >= 1, "checkpoint.keep_last", "must be >= 1")
    _require(settings.simulation.client_cpus > 0, "simulation.client_cpus", "must be > 0")


def check_simulation(settings: RunSettings) -> None:
    """Checks that hold only when the harness itself creates all nodes."""
    fed = settings.federation
    for key in ("min_train_nodes", "min_evaluate_nodes", "min_available_nodes"):
        value = getattr(fed, key)
        _require(
            value <= fed.num_nodes,
            f"federation.{key}",
            f"{value} exceeds federation.num_nodes={fed.num_nodes}: the simulation would wait for "
            "nodes that never come",
        )


def with_absolute_paths(config: dict[str, Any], base: Path) -> dict[str, Any]:
    """Return `config` with relative holdings/model/output paths made absolute.

    Flower apps may run with another working directory (a SuperLink's, a Ray
    worker's), so paths are fixed before the configuration crosses into Flower.
    """
    keys = (
        ("holdings", "path"),
        ("model", "weights_path"),
        ("checkpoint", "resume_from"),
        (None, "output_dir"),
    )
    for section, key in keys:
        holder = config if section is None else config.get(section, {})
        value = holder.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            holder[key] = str((base / Path(value).expanduser()).resolve())
        elif isinstance(value, str) and value:
            holder[key] = str(Path(value).expanduser())
    return config
