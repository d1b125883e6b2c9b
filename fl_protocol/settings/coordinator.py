"""What only the coordinator's side of a run needs: strategy, tracking, evaluation,
checkpoints, and the simulation engine's resources. Nodes never receive these."""

from dataclasses import dataclass, field
from typing import Any

from configs.compose import path_field, require
from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.settings.policy import NodePolicy, check_node_policy
from fl_protocol.settings.simulated_faults import (
    SimulatedAdversaries,
    SimulatedDropouts,
    SimulatedFaults,
    check_simulated_faults,
)


@dataclass
class StrategySettings:
    """A strategy of `flwr.serverapp.strategy` and its constructor parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackingSettings:
    """MLflow tracking, done by the server only."""

    enabled: bool
    experiment_name: str
    log_model: bool
    register_model: bool
    tracking_uri: str | None = None
    run_name: str | None = None
    registered_model_name: str | None = None
    sweep_id: str | None = None
    # Extra tags on the run, e.g. {fedtriage.baseline: centralized} on a reference run.
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class EvaluationSettings:
    """Evaluation of the global model by the server."""

    central: bool
    # The coordinator's own labelled test images: a folder of category sub-folders named
    # like holdings.classes. null: in simulation, the proxy pool's held-out test split.
    test_set: str | None = path_field()


@dataclass
class CheckpointSettings:
    """Checkpoints written by the server after every round."""

    keep_last: int
    resume_from: str | None = path_field()


@dataclass
class SimulationSettings:
    """Resources of Flower's simulation engine and what its simulated nodes hold or do (ignored in deployment)."""

    client_cpus: float
    flower_log_level: str
    # The policy written into every simulated node's kit (a real unit writes its own).
    node_policy: NodePolicy
    # Simulated nodes that poison their contribution or drop out (robustness studies; off by default).
    adversaries: SimulatedAdversaries
    dropouts: SimulatedDropouts
    total_cpus: int | None = None

    @property
    def faults(self) -> SimulatedFaults:
        """What the simulated nodes are to do wrong, as handed to them (`cli.simulation.faults`)."""
        return SimulatedFaults(self.adversaries, self.dropouts)


def check_coordinator_sections(
    tracking: TrackingSettings, checkpoint: CheckpointSettings, simulation: SimulationSettings, mode: ProtectionMode
) -> None:
    require(bool(tracking.experiment_name), "tracking.experiment_name", "must not be empty")
    if tracking.register_model:
        require(tracking.log_model, "tracking.register_model", "needs tracking.log_model=true (a model to register)")
        require(bool(tracking.registered_model_name), "tracking.registered_model_name", "needed to register")
    require(checkpoint.keep_last >= 1, "checkpoint.keep_last", "must be >= 1")
    require(simulation.client_cpus > 0, "simulation.client_cpus", "must be > 0")
    check_node_policy(simulation.node_policy, "simulation.node_policy")
    check_simulated_faults(simulation.faults, mode)
