"""A unit's node policy: the node's own limits, read from its kit, never from a run config.

Defaults live in `configs/node/policy.yaml`; a unit's `policy.yaml` overrides them key by
key. What a coordinator asks can only be made stricter by these limits (see
`fl_client.protection.secagg`).
"""

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from configs import CONFIG_DIR
from configs.compose import compose_config, require, typed_settings
from fedtriage.errors import ConfigError
from fl_protocol.protection.modes import ProtectionMode

POLICY_CONFIG_DIR = CONFIG_DIR / "node"
POLICY_CONFIG_NAME = "policy"
# The hard floor of any secret's threshold: one share alone is the secret.
THRESHOLD_FLOOR = 2
# What a node's evaluation can release, as `evaluation.metrics` names it.
EVALUATION_METRICS = ("loss", "accuracy", "macro-f1", "roc-auc")


@dataclass
class SecurePolicy:
    """Secure aggregation: the fewest peers, shares and co-contributors the node accepts."""

    min_peers: int
    min_threshold: int
    min_cohort: int
    # Send exact example counts inside the sum (secure.secagg.weighting=examples)?
    release_counts: bool


@dataclass
class CkksPolicy:
    """CKKS: what the node adds to a sum it decrypts."""

    # Std of the Gaussian noise added to every decrypted value.
    decryption_noise_std: float


@dataclass
class ProtectionPolicy:
    """The protection modes the node takes part in (`ProtectionMode` values)."""

    modes: list[str]


@dataclass
class PrivacyPolicy:
    """Differential privacy the node insists on, whatever the run asks."""

    required: bool
    # Smallest `privacy.noise_multiplier` accepted (central DP and local DP-SGD alike).
    min_noise_multiplier: float
    # Largest `privacy.epsilon_budget` accepted (null: any the run sets).
    max_epsilon: float | None


@dataclass
class TrainingPolicy:
    """What local training the node does for a run."""

    # Model names (configs/model/) it trains; empty: any.
    models: list[str]
    # Largest model (values in the arrays it is sent) it trains; null: any.
    max_parameters: int | None
    max_local_epochs: int
    min_batch_size: int
    max_batch_size: int


@dataclass
class HoldingsPolicy:
    """Which of the unit's own categories feed which of the federation's classes."""

    # Federation class name -> the unit's category folder names, or Category numbers of its VICS case.
    # Empty: each federation class is the category folder of the same name.
    categories: dict[str, list[str]]


@dataclass
class SchedulePolicy:
    """How much work the node takes, and when."""

    # Training rounds per run and per day (the node's local date); null: no limit.
    max_rounds_per_run: int | None
    max_rounds_per_day: int | None
    # Local hours work starts in, "HH:MM-HH:MM" (may wrap past midnight); null: any time.
    hours: str | None


@dataclass
class EvaluationPolicy:
    """Whether the node evaluates the global model on its holdings, and what of it leaves."""

    federated: bool
    # Metrics it releases (`EVALUATION_METRICS`); a secure sum carries them all or none.
    metrics: list[str]


@dataclass
class CodePolicy:
    """Which app bundles the node runs (besides those approved with `fedtriage node approve`)."""

    approve_installed_release: bool


@dataclass
class NodePolicy:
    """Everything a node decides for itself."""

    secure: SecurePolicy
    ckks: CkksPolicy
    protection: ProtectionPolicy
    privacy: PrivacyPolicy
    training: TrainingPolicy
    holdings: HoldingsPolicy
    schedule: SchedulePolicy
    evaluation: EvaluationPolicy
    code: CodePolicy


def check_node_policy(policy: NodePolicy, where: str = "policy") -> None:
    """Ranges the types cannot express; errors name `<where>.<key>`."""
    secure = policy.secure
    require(secure.min_peers >= 1, f"{where}.secure.min_peers", f"must be >= 1, got {secure.min_peers}")
    require(
        secure.min_threshold >= THRESHOLD_FLOOR,
        f"{where}.secure.min_threshold",
        f"must be >= {THRESHOLD_FLOOR}: one share alone would be the secret, got {secure.min_threshold}",
    )
    require(
        secure.min_threshold <= secure.min_peers + 1,
        f"{where}.secure.min_threshold",
        f"{secure.min_threshold} exceeds the {secure.min_peers + 1} share holders "
        f"{where}.secure.min_peers={secure.min_peers} guarantees",
    )
    require(secure.min_cohort >= 2, f"{where}.secure.min_cohort", f"must be >= 2, got {secure.min_cohort}")
    noise = policy.ckks.decryption_noise_std
    require(noise > 0, f"{where}.ckks.decryption_noise_std", f"must be > 0, got {noise}")
    modes = policy.protection.modes
    known = [mode.value for mode in ProtectionMode]
    require(bool(modes) and all(mode in known for mode in modes), f"{where}.protection.modes",
            f"must list one or more of {', '.join(known)}, got {modes}")
    privacy = policy.privacy
    require(privacy.min_noise_multiplier >= 0, f"{where}.privacy.min_noise_multiplier",
            f"must be >= 0, got {privacy.min_noise_multiplier}")
    require(privacy.max_epsilon is None or privacy.max_epsilon > 0, f"{where}.privacy.max_epsilon",
            f"must be > 0 or null, got {privacy.max_epsilon}")
    training = policy.training
    require(training.max_local_epochs >= 1, f"{where}.training.max_local_epochs",
            f"must be >= 1, got {training.max_local_epochs}")
    require(1 <= training.min_batch_size <= training.max_batch_size, f"{where}.training.min_batch_size",
            f"must be in [1, training.max_batch_size={training.max_batch_size}], got {training.min_batch_size}")
    require(training.max_parameters is None or training.max_parameters >= 1, f"{where}.training.max_parameters",
            f"must be >= 1 or null, got {training.max_parameters}")
    _check_categories(policy.holdings.categories, f"{where}.holdings.categories")
    schedule = policy.schedule
    for key in ("max_rounds_per_run", "max_rounds_per_day"):
        limit = getattr(schedule, key)
        require(limit is None or limit >= 1, f"{where}.schedule.{key}", f"must be >= 1 or null, got {limit}")
    if schedule.hours is not None:
        accepted_hours(schedule.hours, f"{where}.schedule.hours")
    metrics = policy.evaluation.metrics
    require(all(metric in EVALUATION_METRICS for metric in metrics), f"{where}.evaluation.metrics",
            f"must list some of {', '.join(EVALUATION_METRICS)}, got {metrics}")


def _check_categories(categories: dict[str, list[str]], key: str) -> None:
    """Each class maps to one or more distinct local categories, and no local category feeds two classes."""
    seen: dict[str, str] = {}
    for name, local in categories.items():
        require(bool(name.strip()), key, "a federation class name cannot be empty")
        require(bool(local), f"{key}.{name}", "must list at least one of the unit's categories")
        for category in local:
            require(bool(category.strip()), f"{key}.{name}", "a category cannot be empty")
            require(category not in seen, f"{key}.{name}",
                    f"category {category!r} already feeds class {seen.get(category)!r}: a category feeds one class")
            seen[category] = name


def accepted_hours(hours: str, key: str = "policy.schedule.hours") -> tuple[datetime.time, datetime.time]:
    """The start and end of `hours` ("HH:MM-HH:MM"); a bad value is a `ConfigError` naming `key`."""
    start, separator, end = hours.partition("-")
    try:
        if not separator:
            raise ValueError(hours)
        first, last = (datetime.time.fromisoformat(part.strip()) for part in (start, end))
    except ValueError:
        raise ConfigError(key, f"must be HH:MM-HH:MM (local time, e.g. 08:00-18:00), got {hours!r}") from None
    require(first != last, key, f"start and end are the same ({hours!r}); set null to accept work at any time")
    return first, last


def default_policy_document() -> dict[str, Any]:
    """The defaults of `configs/node/policy.yaml` as a plain dict."""
    return compose_config(config_name=POLICY_CONFIG_NAME, config_dir=POLICY_CONFIG_DIR)


def node_policy(document: dict[str, Any] | None = None, where: str = "policy") -> NodePolicy:
    """The defaults overridden by `document`, typed and checked."""
    merged = OmegaConf.merge(default_policy_document(), _categories_as_names(document or {}))
    policy = typed_settings(NodePolicy, merged)
    check_node_policy(policy, where)
    return policy


def _categories_as_names(document: dict[str, Any]) -> dict[str, Any]:
    """`holdings.categories` as lists of names: a VICS Category is written as a number, one category alone."""
    holdings = document.get("holdings")
    categories = holdings.get("categories") if isinstance(holdings, dict) else None
    if not isinstance(categories, dict):
        return document
    named = {name: [str(item) if isinstance(item, int) and not isinstance(item, bool) else item
                    for item in (local if isinstance(local, list) else [local])]
             for name, local in categories.items()}
    return {**document, "holdings": {**holdings, "categories": named}}


def load_node_policy(path: Path) -> NodePolicy:
    """A unit's policy file (missing: the defaults); a bad key is a `ConfigError` naming it."""
    if not path.is_file():
        return node_policy()
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError("policy", f"cannot read node policy {path}: {err}") from err
    if not isinstance(document, dict):
        raise ConfigError("policy", f"node policy {path} must be a mapping of settings")
    return node_policy(document)
