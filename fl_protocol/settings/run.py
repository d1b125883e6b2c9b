"""The settings of one federation run: what every node receives, and the coordinator's whole.

`NodeSettings` is what crosses to nodes; `RunSettings` adds the sections only the
coordinator uses (strategy, tracking, evaluation, checkpoints, simulation engine).
Both read a resolved configuration the same way: type-checked against the schema
(unknown keys and wrong types are errors naming the key), paths made absolute, then
range-checked, so a bad setting fails before any node trains.
"""

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, TypeVar

from configs.compose import absolute_paths, path_field, require, typed_settings
from fl_protocol.protection.modes import PrivacyMode
from fl_protocol.settings.coordinator import (
    CheckpointSettings,
    EvaluationSettings,
    SimulationSettings,
    StrategySettings,
    TrackingSettings,
    check_coordinator_sections,
)
from fl_protocol.settings.node import (
    FederationSettings,
    HoldingsSettings,
    ModelSettings,
    PartitionSettings,
    TrainSettings,
    check_federation,
    check_holdings,
    check_partition,
    check_train,
    with_dataset_classes,
)
from fl_protocol.settings.protection import (
    PrivacySettings,
    UpdateProtectionSettings,
    check_privacy,
    check_update_protection,
)

_AnySettings = TypeVar("_AnySettings", bound="NodeSettings")
# Seeds derived from it (one per node and round) must stay within NumPy's 32-bit seeds.
_LARGEST_SEED = 2**30


@dataclass
class NodeSettings:
    """What a node needs of a run: holdings, model, local training, protection, privacy."""

    seed: int
    holdings: HoldingsSettings
    partition: PartitionSettings
    model: ModelSettings
    train: TrainSettings
    federation: FederationSettings
    secure: UpdateProtectionSettings
    privacy: PrivacySettings

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-ready), the inverse of `settings_from_mapping`."""
        return asdict(self)

    def check(self) -> None:
        """Check values the schema's types cannot express; raise `ConfigError`."""
        require(0 <= self.seed <= _LARGEST_SEED, "seed", f"must be in [0, {_LARGEST_SEED}], got {self.seed}")
        check_holdings(self.holdings)
        check_partition(self.partition)
        check_train(self.train)
        check_federation(self.federation)
        check_update_protection(self.secure, self.federation.num_nodes)
        check_privacy(self.privacy, self.secure.mode)


@dataclass
class RunSettings(NodeSettings):
    """Everything one federation run needs: the nodes' part and the coordinator's own."""

    strategy: StrategySettings
    tracking: TrackingSettings
    evaluation: EvaluationSettings
    checkpoint: CheckpointSettings
    simulation: SimulationSettings
    output_dir: str | None = path_field()
    # The coordinator's kit folder (identity key, roster); secure modes need one.
    kit: str | None = path_field()

    def check(self) -> None:
        super().check()
        if self.privacy.mode is PrivacyMode.local_dpsgd:
            require(
                self.strategy.name != "fedprox",
                "privacy.mode",
                "local DP-SGD clips per-sample gradients; FedProx's proximal term has none (use fedavg)",
            )
        check_coordinator_sections(self.tracking, self.checkpoint, self.simulation, self.secure.mode)

    def for_nodes(self) -> NodeSettings:
        """The part of these settings a node receives."""
        names = [item.name for item in dataclasses.fields(NodeSettings)]
        return NodeSettings(**{name: getattr(self, name) for name in names})


def settings_from_mapping(
    config: Mapping[str, Any] | Any, base: Path | None = None, schema: type[_AnySettings] = RunSettings  # type: ignore[assignment]
) -> _AnySettings:
    """Type-check a resolved configuration (dict or DictConfig) against `schema` and return it.

    With `base`, relative paths are taken from it. Raises `ConfigError` naming the first
    offending key.
    """
    settings = typed_settings(schema, config)
    if base is not None:
        absolute_paths(settings, base)
    settings.check()
    settings.holdings = with_dataset_classes(settings.holdings)
    return settings
