"""What a simulated node does wrong in a robustness study; a deployed node never does any of it.

The simulation that starts the nodes (`cli.simulation.faults`) puts its `simulation.adversaries`
and `simulation.dropouts` in their process environment; nothing in a run config or a message
can set them (`simulation.*` never reaches a node, and a node's settings schema has no such
key). A node acts on them only when it is a simulated one: Flower gave it a partition id, and it
has none of what a deployed unit's SuperNode is started with (its holdings path, its kit). So a
unit's node ignores them even with the variable in its environment.
"""

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from flwr.app import MessageType
from torch.utils.data import TensorDataset

from configs.compose import typed_settings
from fedtriage.errors import Refused
from fl_client.kit import KIT_KEY
from fl_client.node_holdings import HOLDINGS_PATH_KEY, NUM_PARTITIONS_KEY, PARTITION_ID_KEY, NodeConfig
from fl_protocol.protection import messages
from fl_protocol.settings.simulated_faults import Attack, SimulatedFaults, drops_out, is_adversary

# Set by the simulation for the nodes it starts: `simulation.adversaries` and `.dropouts` as JSON.
SIMULATED_FAULTS_VARIABLE = "FEDTRIAGE_SIMULATED_FAULTS"

# The message types of each stage a simulated node can drop out at (`simulated_faults.DROPOUT_STAGES`).
_STAGE_MESSAGES: dict[str, tuple[str, ...]] = {
    "setup": (messages.SECAGG_SETUP,),
    "share_keys": (messages.SECAGG_SHARE_KEYS,),
    "train": (MessageType.TRAIN,),
    "evaluate": (MessageType.EVALUATE, messages.SECAGG_EVALUATE),
    "consistency": (messages.SECAGG_CONSISTENCY,),
    "unmask": (messages.SECAGG_UNMASK,),
    "ckks_decrypt": (messages.CKKS_DECRYPT,),
}


class SimulatedDropout(Refused):
    """A simulated node leaving a round at its stage: the server sees it fail there, as a lost node."""

    @property
    def public_reason(self) -> str:
        return "dropped: simulated"


@dataclass(frozen=True)
class NodeFaults:
    """This node's misbehaviour; the defaults are an honest node."""

    attack: Attack = Attack.none
    scale: float = 1.0
    drop_stage: str | None = None

    def drops_at(self, message_type: str) -> bool:
        """Whether the node leaves the round instead of answering `message_type`."""
        return self.drop_stage is not None and message_type in _STAGE_MESSAGES[self.drop_stage]


HONEST = NodeFaults()


def node_faults(node_config: NodeConfig) -> NodeFaults:
    """What the node of `node_config` is to do wrong: nothing unless it is a simulated node the
    simulation that started it chose."""
    if not is_simulated_node(node_config):
        return HONEST
    document = os.environ.get(SIMULATED_FAULTS_VARIABLE, "")
    if not document:
        return HONEST
    return _faults_of(document, int(node_config[PARTITION_ID_KEY]), int(node_config[NUM_PARTITIONS_KEY]))


def is_simulated_node(node_config: NodeConfig) -> bool:
    """A node of Flower's simulation engine: a partition of the proxy pool, no holdings or kit of its own."""
    deployed = HOLDINGS_PATH_KEY in node_config or KIT_KEY in node_config
    return not deployed and PARTITION_ID_KEY in node_config and NUM_PARTITIONS_KEY in node_config


@functools.lru_cache(maxsize=64)
def _faults_of(document: str, partition_id: int, num_nodes: int) -> NodeFaults:
    faults = typed_settings(SimulatedFaults, json.loads(document))
    attacks = is_adversary(faults, partition_id, num_nodes)
    return NodeFaults(
        attack=faults.adversaries.attack if attacks else Attack.none,
        scale=faults.adversaries.scale if attacks else 1.0,
        drop_stage=faults.dropouts.stage if drops_out(faults, partition_id, num_nodes) else None,
    )


def flipped_labels(dataset: TensorDataset, num_classes: int) -> TensorDataset:
    """The same images with every label moved to the next class (a permutation that leaves none right)."""
    images, labels = dataset.tensors
    return TensorDataset(images, (labels + 1) % num_classes)


def scaled_update(
    received: Mapping[str, np.ndarray], trained: Mapping[str, np.ndarray], scale: float
) -> dict[str, np.ndarray]:
    """`received + scale * (trained - received)` for every floating-point array; counters as trained."""
    scaled = {}
    for name, values in trained.items():
        if np.issubdtype(values.dtype, np.floating):
            start = received[name].astype(values.dtype)
            scaled[name] = (start + values.dtype.type(scale) * (values - start)).astype(values.dtype)
        else:
            scaled[name] = values
    return scaled
