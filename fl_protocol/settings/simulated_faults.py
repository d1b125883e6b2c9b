"""Misbehaving simulated nodes for robustness studies: a setting of the simulation, never of a run.

A robustness study needs nodes that poison their training data (labels permuted), send a
scaled update, or drop out of every round at one stage of its protocol. These settings sit
under `simulation.*`, which only the coordinator's side reads and no node is ever sent
(`RunSettings.for_nodes`). The simulation hands them to its own simulated nodes through their
process environment (`cli.simulation.faults`), and a node acts on them only when it is one of
them (`fl_client.simulated_faults`): a deployed unit's node never misbehaves on anyone's word.
"""

import math
from dataclasses import dataclass
from enum import StrEnum

from configs.compose import require
from fl_protocol.protection.modes import ProtectionMode


class Attack(StrEnum):
    """What a simulated adversary does to its contribution."""

    none = "none"
    # Data poisoning: it trains on its own images with every label moved to the next class.
    label_flip = "label_flip"
    # Model poisoning: its update (trained minus received weights) is multiplied by `scale`.
    scale = "scale"


# The stages a simulated node can drop out at (`fl_client.simulated_faults` knows their message types),
# and those each protection mode has: dropping at another would simulate nothing.
_PLAINTEXT_STAGES = ("train", "evaluate")
_SECAGG_STAGES = ("setup", "share_keys", "train", "evaluate", "consistency", "unmask")
DROPOUT_STAGES = (*_SECAGG_STAGES, "ckks_decrypt")
STAGES_OF_MODE: dict[ProtectionMode, tuple[str, ...]] = {
    ProtectionMode.plaintext: _PLAINTEXT_STAGES,
    ProtectionMode.secagg: _SECAGG_STAGES,
    ProtectionMode.ckks: (*_SECAGG_STAGES, "ckks_decrypt"),
}


@dataclass
class SimulatedAdversaries:
    """The simulated nodes that poison what they send: the first `share` of them by partition id."""

    share: float
    attack: Attack
    # Attack `scale`: the factor on the update (negative: against the honest direction).
    scale: float


@dataclass
class SimulatedDropouts:
    """The simulated nodes that drop out of every round at `stage`: the last `share` of them by partition id."""

    share: float
    stage: str


@dataclass
class SimulatedFaults:
    """Every misbehaviour of a simulated federation's nodes (all off by default)."""

    adversaries: SimulatedAdversaries
    dropouts: SimulatedDropouts


def misbehaving_count(share: float, num_nodes: int) -> int:
    """How many of `num_nodes` nodes a share stands for: the nearest whole number (halves round up)."""
    return math.floor(share * num_nodes + 0.5)


def is_adversary(faults: SimulatedFaults, partition_id: int, num_nodes: int) -> bool:
    """Adversaries are the nodes of the lowest partition ids, so that logs name them: node-0, node-1, ..."""
    attacking = faults.adversaries.attack is not Attack.none
    return attacking and partition_id < misbehaving_count(faults.adversaries.share, num_nodes)


def drops_out(faults: SimulatedFaults, partition_id: int, num_nodes: int) -> bool:
    """Dropouts are the nodes of the highest partition ids: a node is an adversary or drops, not both,
    unless the two shares add up to more than the whole federation."""
    return partition_id >= num_nodes - misbehaving_count(faults.dropouts.share, num_nodes)


def check_simulated_faults(faults: SimulatedFaults, mode: ProtectionMode) -> None:
    """Ranges, and a dropout stage the run's protection mode has."""
    adversaries, dropouts = faults.adversaries, faults.dropouts
    require(0.0 <= adversaries.share <= 1.0, "simulation.adversaries.share",
            f"a share of the nodes, in [0, 1], got {adversaries.share}")
    require(math.isfinite(adversaries.scale), "simulation.adversaries.scale",
            f"must be finite, got {adversaries.scale}")
    require(0.0 <= dropouts.share < 1.0, "simulation.dropouts.share",
            f"a share of the nodes, in [0, 1) (some node must stay), got {dropouts.share}")
    require(dropouts.stage in DROPOUT_STAGES, "simulation.dropouts.stage",
            f"unknown stage {dropouts.stage!r}; choose one of {', '.join(DROPOUT_STAGES)}")
    require(dropouts.share == 0.0 or dropouts.stage in STAGES_OF_MODE[mode], "simulation.dropouts.stage",
            f"secure.mode={mode} has no stage {dropouts.stage!r}; its stages: {', '.join(STAGES_OF_MODE[mode])}")
