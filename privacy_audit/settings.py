"""The audit's settings: the run's configuration plus the `audit` group, composed once from `configs/`.

The attacked updates are made with the run's own settings (holdings, model, training, secure
aggregation, DP); the `audit` group (configs/audit/) says only what is attacked and with
what budget, so a reader can set the audit beside the run it audits.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configs.compose import compose_config, require, typed_settings
from fl_protocol.settings import RunSettings
from fl_protocol.settings.run import settings_from_mapping

AUDIT_CONFIG_NAME = "privacy_audit"
AUDIT_KEY = "audit"
# Reconstructions are shown and stored: only images that are proxies by construction.
PROXY_SOURCES = ("digits", "synthetic")
PRIVACY_SETTINGS = ("none", "local_dpsgd", "central")


@dataclass
class InversionSettings:
    """Gradient inversion: what each attacked node holds, which cohorts, the attack's budget."""

    images_per_node: list[int]
    cohort_sizes: list[int]
    iterations: int
    step_size: float
    tv_weight: float
    trials: int


@dataclass
class MembershipSettings:
    """Membership inference: the target federation's members and training, and the shadow models."""

    members_per_node: int
    rounds: int
    local_epochs: int
    shadow_models: int
    privacy: list[str]
    epsilon_budget: float
    nodes: int | None = None
    workers: int | None = None


@dataclass
class AuditSettings:
    inversion: InversionSettings
    membership: MembershipSettings


@dataclass(frozen=True)
class AuditConfiguration:
    """The audited run's settings and the audit's own."""

    run: RunSettings
    audit: AuditSettings


def load_audit_configuration(overrides: Sequence[str] = (), base: Path | None = None) -> AuditConfiguration:
    """`configs/privacy_audit.yaml` with Hydra overrides (`audit=quick`, `train.lr=0.1`, ...), checked."""
    return audit_configuration_from_mapping(compose_config(overrides, config_name=AUDIT_CONFIG_NAME), base)


def audit_configuration_from_mapping(config: dict[str, Any], base: Path | None = None) -> AuditConfiguration:
    """A resolved configuration that holds the `audit` group (the command's, or the `privacy-audit`
    preset's), checked; `config` itself is left as it was."""
    config = dict(config)
    audit = typed_settings(AuditSettings, config.pop(AUDIT_KEY))
    run = settings_from_mapping(config, base=base or Path.cwd())
    check_audit(audit, run)
    return AuditConfiguration(run, audit)


def check_audit(audit: AuditSettings, run: RunSettings) -> None:
    """Values the schema cannot express; proxy data only, since reconstructions are shown."""
    require(
        run.holdings.source in PROXY_SOURCES,
        "holdings.source",
        f"the privacy audit reconstructs training images and shows them: proxy data only "
        f"({' or '.join(PROXY_SOURCES)}), got {run.holdings.source!r}",
    )
    require(run.train.optimizer == "sgd", "train.optimizer",
            "gradient inversion reads a one-step SGD update as -lr * gradient: use train=sgd")
    inversion, membership = audit.inversion, audit.membership
    require(bool(inversion.images_per_node) and min(inversion.images_per_node) >= 1,
            "audit.inversion.images_per_node", "at least one count, each >= 1")
    require(max(inversion.images_per_node) <= run.train.batch_size, "audit.inversion.images_per_node",
            f"each count must fit one batch (train.batch_size={run.train.batch_size}): the attack reads one step")
    require(min(inversion.cohort_sizes, default=2) >= 2, "audit.inversion.cohort_sizes",
            "a secure sum holds at least 2 nodes")
    require(inversion.iterations >= 1, "audit.inversion.iterations", "must be >= 1")
    require(inversion.step_size > 0, "audit.inversion.step_size", "must be > 0")
    require(inversion.tv_weight >= 0, "audit.inversion.tv_weight", "must be >= 0")
    require(inversion.trials >= 1, "audit.inversion.trials", "must be >= 1")
    require(membership.members_per_node >= 1, "audit.membership.members_per_node", "must be >= 1")
    require(membership.nodes is None or membership.nodes >= 2, "audit.membership.nodes",
            "the global model is a secure sum of at least 2 nodes")
    require(membership.rounds >= 1, "audit.membership.rounds", "must be >= 1")
    require(membership.local_epochs >= 1, "audit.membership.local_epochs", "must be >= 1")
    require(membership.shadow_models >= 2, "audit.membership.shadow_models",
            "LiRA needs shadow models that held each image and ones that did not: at least 2")
    for name in membership.privacy:
        require(name in PRIVACY_SETTINGS, "audit.membership.privacy",
                f"unknown setting {name!r}; choose from {', '.join(PRIVACY_SETTINGS)}")
    require(membership.epsilon_budget > 0, "audit.membership.epsilon_budget", "must be > 0")
    require(membership.workers is None or membership.workers >= 1, "audit.membership.workers",
            "must be >= 1 (null: one per CPU core)")
