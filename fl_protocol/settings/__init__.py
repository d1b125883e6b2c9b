"""Typed settings of a federation run, split by concern.

The YAML files under `configs/` hold every default; these dataclasses only give the
configuration a schema: `node` (holdings, model, training, federation size),
`protection` (`secure.*`, `privacy.*`), `coordinator` (strategy, tracking, evaluation,
checkpoints, simulation), and `run`, which puts them together as what a node receives
(`NodeSettings`) and the coordinator's whole (`RunSettings`).
"""

from fl_protocol.settings.coordinator import (
    CheckpointSettings,
    EvaluationSettings,
    SimulationSettings,
    StrategySettings,
    TrackingSettings,
)
from fl_protocol.settings.node import (
    FederationSettings,
    HoldingsSettings,
    ModelSettings,
    PartitionSettings,
    SyntheticSettings,
    TrainSettings,
)
from fl_protocol.settings.protection import (
    CkksSettings,
    PrivacySettings,
    SecAggSettings,
    UpdateProtectionSettings,
)
from fl_protocol.settings.run import NodeSettings, RunSettings, settings_from_mapping

__all__ = [
    "CheckpointSettings",
    "CkksSettings",
    "EvaluationSettings",
    "FederationSettings",
    "HoldingsSettings",
    "ModelSettings",
    "NodeSettings",
    "PartitionSettings",
    "PrivacySettings",
    "RunSettings",
    "SecAggSettings",
    "SimulationSettings",
    "StrategySettings",
    "SyntheticSettings",
    "TrackingSettings",
    "TrainSettings",
    "UpdateProtectionSettings",
    "settings_from_mapping",
]
