"""Typed settings of one federation run, read from the resolved Hydra configuration.

The YAML files under `configs/` hold every default; these dataclasses only give the
configuration a schema. `settings_from_mapping` type-checks a resolved config against
the schema (unknown keys and wrong types are errors that name the key) and then checks
ranges, so a bad setting fails before any node trains.
"""

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fl_protocol.errors import ConfigError

_Settings = TypeVar("_Settings")

HOLDINGS_SOURCES = ("digits", "folder", "synthetic", "vics")
PARTITION_SCHEMES = ("iid", "dirichlet", "shards")
OPTIMIZERS = ("sgd", "adam", "adamw")
DEVICES = ("cpu", "cuda", "auto")
IMAGE_FORMATS = ("png", "jpeg", "mixed")
UPDATE_PROTECTION_MODES = ("none", "secagg", "ckks")
PRIVACY_MODES = ("none", "central", "local_dpsgd")
# SEAL's largest total coefficient modulus (bits) per CKKS polynomial modulus degree, at
# 128-bit security; the degrees fedtriage accepts.
CKKS_MAX_COEFF_MOD_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}


@dataclass
class SyntheticSettings:
    """How the synthetic holdings generator fills the holdings folder."""

    images_per_class: int = MISSING
    image_format: str = MISSING


@dataclass
class HoldingsSettings:
    """Where a node's images come from and how they are shaped for the model."""

    source: str = MISSING
    path: str | None = None
    classes: list[str] | None = None
    image_size: int = MISSING
    channels: int = MISSING
    test_fraction: float = MISSING
    val_fraction: float = MISSING
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    # Source "vics": the folder the case's RelativeFilePaths start from; null: the case file's folder.
    vics_root: str | None = None
    # Source "vics": the VICS Category code of each class in `classes`, in the same order.
    vics_categories: list[int] | None = None


@dataclass
class PartitionSettings:
    """How simulation splits the federated pool across nodes."""

    scheme: str = MISSING
    alpha: float = MISSING
    labels_per_node: int = MISSING
    min_samples_per_node: int = MISSING


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
    momentum: float = MISSING
    weight_decay: float = MISSING
    device: str = MISSING
    threads: int = MISSING


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
    fraction_train: float = MISSING
    fraction_evaluate: float = MISSING
    min_train_nodes: int = MISSING
    min_evaluate_nodes: int = MISSING
    min_available_nodes: int = MISSING
    node_wait_timeout_s: float = MISSING
    round_timeout_s: float = MISSING
    max_consecutive_failed_rounds: int = MISSING


@dataclass
class SecAggSettings:
    """SecAgg+ parameters (`secure.mode: secagg`)."""

    # Graph degree k (even); null: every node neighbours every other (classic SecAgg).
    neighbours: int | None = None
    # Shares needed to rebuild a node's secrets, as a fraction (> 0.5) of its k + 1 holders.
    threshold: float = MISSING
    quantization_bits: int = MISSING
    # Each value of a node's weighted update must lie in [-clip_range, clip_range].
    clip_range: float = MISSING
    # A node's weight is min(examples, max_weight) / max_weight.
    max_weight: int = MISSING
    # Bound of the training and evaluation losses carried in the secure vector.
    metric_bound: float = MISSING


@dataclass
class CkksSettings:
    """CKKS homomorphic encryption parameters (`secure.mode: ckks`, TenSEAL)."""

    poly_modulus_degree: int = MISSING
    coeff_mod_bit_sizes: list[int] = MISSING
    global_scale_bits: int = MISSING
    # Layer-name prefixes encrypted under CKKS; the rest goes through SecAgg. null: all.
    encrypted_layers: list[str] | None = None
    # Folder with the federation's CKKS contexts; null: generated at the start of a simulation.
    context_dir: str | None = None


@dataclass
class UpdateProtectionSettings:
    """How model updates are protected on their way to the server."""

    mode: str = MISSING
    secagg: SecAggSettings = field(default_factory=SecAggSettings)
    ckks: CkksSettings = field(default_factory=CkksSettings)


@dataclass
class PrivacySettings:
    """Differential privacy: central (clip on nodes, noise on the secure sum) or local DP-SGD."""

    mode: str = MISSING
    # Central DP: L2 norm each node's update is clipped to, and noise std / clip_norm.
    clip_norm: float = MISSING
    noise_multiplier: float = MISSING
    delta: float = MISSING
    # The run stops before a round would push epsilon past this budget.
    epsilon_budget: float = MISSING
    # Local DP-SGD (Opacus): per-sample gradient norm bound.
    max_grad_norm: float = MISSING


@dataclass
class TrackingSettings:
    """MLflow tracking, done by the server only."""

    enabled: bool = MISSING
    tracking_uri: str | None = None
    experiment_name: str = MISSING
    run_name: str | None = None
    registered_model_name: str | None = None
    log_model: bool = MISSING
    sweep_id: str | None = None


@dataclass
class EvaluationSettings:
    """Evaluation of the global model by the server."""

    central: bool = MISSING


@dataclass
class CheckpointSettings:
    """Checkpoints written by the server after every round."""

    keep_last: int = MISSING
    resume_from: str | None = None


@dataclass
class SimulationSettings:
    """Resources of Flower's simulation engine (ignored in deployment)."""

    client_cpus: float = MISSING
    total_cpus: int | None = None
    flower_log_level: str = MISSING


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
    privacy: PrivacySettings = field(default_factory=PrivacySettings)
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
    settings = typed_settings(RunSettings, config)
    check_ranges(settings)
    return settings


def typed_settings(schema: type[_Settings], config: Mapping[str, Any] | Any) -> _Settings:
    """`config` checked against the dataclass `schema`; a `ConfigError` names the first bad key."""
    try:
        settings = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), config))
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "config"
        problem = str(err).split("\n", 1)[0]
        raise ConfigError(str(key), problem) from err
    assert isinstance(settings, schema)
    return settings


def require(condition: bool, key: str, problem: str) -> None:
    """Raise `ConfigError(key, problem)` unless `condition`."""
    if not condition:
        raise ConfigError(key, problem)


def _one_of(value: str, choices: tuple[str, ...], key: str) -> None:
    require(value in choices, key, f"unknown value {value!r}; choose one of {', '.join(choices)}")


def check_ranges(settings: RunSettings) -> None:
    """Check values the schema's types cannot express; raise `ConfigError`."""
    hold = settings.holdings
    _one_of(hold.source, HOLDINGS_SOURCES, "holdings.source")
    if hold.source in ("folder", "synthetic", "vics"):
        require(bool(hold.path), "holdings.path", f"required for source {hold.source!r}")
    if hold.source == "vics":
        _check_vics_holdings(hold)
    require(hold.image_size >= 4, "holdings.image_size", f"must be >= 4, got {hold.image_size}")
    require(hold.channels in (1, 3), "holdings.channels", f"must be 1 or 3, got {hold.channels}")
    require(0.0 <= hold.test_fraction < 1.0, "holdings.test_fraction", f"must be in [0, 1), got {hold.test_fraction}")
    require(0.0 <= hold.val_fraction < 1.0, "holdings.val_fraction", f"must be in [0, 1), got {hold.val_fraction}")
    if hold.classes is not None:
        require(len(hold.classes) >= 2, "holdings.classes", f"needs at least 2 classes, got {hold.classes}")
        require(len(set(hold.classes)) == len(hold.classes), "holdings.classes", "names must be unique")
    _one_of(hold.synthetic.image_format, IMAGE_FORMATS, "holdings.synthetic.image_format")
    require(hold.synthetic.images_per_class >= 0, "holdings.synthetic.images_per_class", "must be >= 0")

    part = settings.partition
    _one_of(part.scheme, PARTITION_SCHEMES, "partition.scheme")
    require(part.alpha > 0, "partition.alpha", f"must be > 0, got {part.alpha}")
    require(part.labels_per_node >= 1, "partition.labels_per_node", f"must be >= 1, got {part.labels_per_node}")
    require(part.min_samples_per_node >= 1, "partition.min_samples_per_node", "must be >= 1")

    train = settings.train
    _one_of(train.optimizer, OPTIMIZERS, "train.optimizer")
    _one_of(train.device, DEVICES, "train.device")
    require(train.local_epochs >= 1, "train.local_epochs", f"must be >= 1, got {train.local_epochs}")
    require(train.batch_size >= 1, "train.batch_size", f"must be >= 1, got {train.batch_size}")
    require(train.lr > 0, "train.lr", f"must be > 0, got {train.lr}")
    require(train.threads >= 1, "train.threads", f"must be >= 1, got {train.threads}")

    fed = settings.federation
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
    require(
        fed.max_consecutive_failed_rounds >= 1, "federation.max_consecutive_failed_rounds", "must be >= 1"
    )

    _check_update_protection(settings)
    _check_privacy(settings)
    require(bool(settings.tracking.experiment_name), "tracking.experiment_name", "must not be empty")
    require(settings.checkpoint.keep_last >= 1, "checkpoint.keep_last", "must be >= 1")
    require(settings.simulation.client_cpus > 0, "simulation.client_cpus", "must be > 0")


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


def _check_update_protection(settings: RunSettings) -> None:
    secure = settings.secure
    _one_of(secure.mode, UPDATE_PROTECTION_MODES, "secure.mode")
    if secure.mode == "none":
        return
    sec = secure.secagg
    nodes = settings.federation.num_nodes
    if sec.neighbours is not None:
        require(
            sec.neighbours >= 2 and sec.neighbours % 2 == 0,
            "secure.secagg.neighbours",
            f"must be an even number >= 2 (or null for all), got {sec.neighbours}",
        )
    require(0.5 < sec.threshold <= 1.0, "secure.secagg.threshold", f"must be in (0.5, 1], got {sec.threshold}")
    headroom = 32 - math.ceil(math.log2(nodes + 1))
    require(
        8 <= sec.quantization_bits <= min(24, headroom),
        "secure.secagg.quantization_bits",
        f"must be in [8, {min(24, headroom)}] so that the sum over {nodes} nodes fits 32 bits, "
        f"got {sec.quantization_bits}",
    )
    require(sec.clip_range > 0, "secure.secagg.clip_range", f"must be > 0, got {sec.clip_range}")
    require(
        1 <= sec.max_weight and sec.max_weight * (nodes + 1) < 2**32,
        "secure.secagg.max_weight",
        f"must be >= 1 and small enough that {nodes} nodes' counts fit 32 bits, got {sec.max_weight}",
    )
    require(sec.metric_bound > 0, "secure.secagg.metric_bound", f"must be > 0, got {sec.metric_bound}")
    if secure.mode == "ckks":
        _check_ckks(secure.ckks)


def _check_ckks(ckks: CkksSettings) -> None:
    """Parameters SEAL would refuse only later, with an error that names no setting."""
    require(
        ckks.poly_modulus_degree in CKKS_MAX_COEFF_MOD_BITS,
        "secure.ckks.poly_modulus_degree",
        f"must be 4096, 8192, 16384 or 32768, got {ckks.poly_modulus_degree}",
    )
    bits = ckks.coeff_mod_bit_sizes
    require(len(bits) >= 2, "secure.ckks.coeff_mod_bit_sizes", "needs at least 2 moduli")
    require(
        all(2 <= size <= 60 for size in bits), "secure.ckks.coeff_mod_bit_sizes", f"each must be in [2, 60], got {bits}"
    )
    limit = CKKS_MAX_COEFF_MOD_BITS[ckks.poly_modulus_degree]
    require(
        sum(bits) <= limit,
        "secure.ckks.coeff_mod_bit_sizes",
        f"add up to {sum(bits)} bits, more than the {limit} SEAL allows for "
        f"secure.ckks.poly_modulus_degree={ckks.poly_modulus_degree}",
    )
    require(
        20 <= ckks.global_scale_bits <= 60, "secure.ckks.global_scale_bits", f"must be in [20, 60], got "
        f"{ckks.global_scale_bits}"
    )
    require(
        ckks.encrypted_layers is None or len(ckks.encrypted_layers) > 0,
        "secure.ckks.encrypted_layers",
        "must name at least one layer prefix (or be null for the whole model); [] would encrypt nothing",
    )


def _check_privacy(settings: RunSettings) -> None:
    privacy = settings.privacy
    _one_of(privacy.mode, PRIVACY_MODES, "privacy.mode")
    if privacy.mode == "none":
        return
    if privacy.mode == "central":
        require(
            settings.secure.mode in ("secagg", "ckks"),
            "privacy.mode",
            "central DP adds noise to the securely aggregated sum: it needs secure.mode secagg or ckks",
        )
        require(privacy.clip_norm > 0, "privacy.clip_norm", f"must be > 0, got {privacy.clip_norm}")
    if privacy.mode == "local_dpsgd":
        require(
            settings.strategy.name != "fedprox",
            "privacy.mode",
            "local DP-SGD clips per-sample gradients; FedProx's proximal term has none (use fedavg)",
        )
    require(privacy.noise_multiplier > 0, "privacy.noise_multiplier", f"must be > 0, got {privacy.noise_multiplier}")
    require(0 < privacy.delta < 1, "privacy.delta", f"must be in (0, 1), got {privacy.delta}")
    require(privacy.epsilon_budget > 0, "privacy.epsilon_budget", f"must be > 0, got {privacy.epsilon_budget}")
    require(privacy.max_grad_norm > 0, "privacy.max_grad_norm", f"must be > 0, got {privacy.max_grad_norm}")


def check_simulation(settings: RunSettings) -> None:
    """Checks that hold only when the harness itself creates all nodes."""
    fed = settings.federation
    for key in ("min_train_nodes", "min_evaluate_nodes", "min_available_nodes"):
        value = getattr(fed, key)
        require(
            value <= fed.num_nodes,
            f"federation.{key}",
            f"{value} exceeds federation.num_nodes={fed.num_nodes}: the simulation would wait for "
            "nodes that never come",
        )


def with_ckks_context_dir(settings: RunSettings, context_dir: Path) -> RunSettings:
    """`settings` using the federation's CKKS contexts in `context_dir`."""
    ckks = dataclasses.replace(settings.secure.ckks, context_dir=str(context_dir))
    return dataclasses.replace(settings, secure=dataclasses.replace(settings.secure, ckks=ckks))


def with_absolute_paths(config: dict[str, Any], base: Path) -> dict[str, Any]:
    """Return `config` with relative holdings/model/output/CKKS-context paths made absolute.

    Flower apps may run with another working directory (a SuperLink's, a Ray
    worker's), so paths are fixed before the configuration crosses into Flower.
    """
    keys = (
        (("holdings",), "path"),
        (("holdings",), "vics_root"),
        (("model",), "weights_path"),
        (("checkpoint",), "resume_from"),
        (("secure", "ckks"), "context_dir"),
        ((), "output_dir"),
    )
    for sections, key in keys:
        holder = config
        for section in sections:
            holder = holder.get(section, {})
        value = holder.get(key)
        if isinstance(value, str) and value:
            holder[key] = absolute_path(value, base)
    return config


def absolute_path(value: str, base: Path) -> str:
    """`value` with `~` expanded; a relative path is taken from `base`."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())
