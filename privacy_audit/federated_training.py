"""A global model trained as a secure federation trains it, for the membership audit.

Each round every node trains the global model on its members with the project's local
training (`node_updates.train_node`: plain, or DP-SGD with its ledger in its kit); the server
takes the cohort's secure sum (`server_view.secure_sum`: central DP's clipping and noise
included) and moves the model to the mean, as `SecAggAggregation.train_round` does before
FedAvg (whose aggregate of one mean is that mean). No evaluation, no Flower engine: the
model and its privacy spending are those a `secure=secagg` federation of these nodes makes.
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fl_client.kit import NodeKit
from fl_protocol.protection import array_vector
from fl_protocol.protection.modes import PrivacyMode
from fl_protocol.settings import RunSettings
from fl_server.protection.central_dp import CentralPrivacy
from privacy_audit.audited_model import ModelArrays, build_audited_model, model_arrays
from privacy_audit.node_kits import provision_node_kits
from privacy_audit.node_updates import NodeData, train_node
from privacy_audit.server_view import secure_sum


@dataclass(frozen=True)
class NodeMembers:
    """The images (float [N, C, H, W] in [0, 1]) and labels one node trains on in every round."""

    images: torch.Tensor
    labels: torch.Tensor


@dataclass(frozen=True)
class GlobalModel:
    """The final global model and the epsilon it cost (None without DP)."""

    arrays: ModelArrays
    # Central DP: the run's epsilon; local DP-SGD: the largest epsilon any node reached.
    epsilon: float | None


def train_federation(
    settings: RunSettings, nodes: Sequence[NodeMembers], rounds: int, local_epochs: int, seed: int, kits: Path
) -> GlobalModel:
    """`rounds` secure rounds over `nodes` from a model initialised with `seed`; node kits (DP-SGD) go in `kits`."""
    settings = dataclasses.replace(settings, train=dataclasses.replace(settings.train, local_epochs=local_epochs))
    node_settings = settings.for_nodes()
    torch.manual_seed(seed)
    arrays = model_arrays(build_audited_model(node_settings))
    local = settings.privacy.mode is PrivacyMode.local_dpsgd
    node_kits: list[NodeKit | None] = list(provision_node_kits(kits, len(nodes))) if local else [None] * len(nodes)
    privacy = CentralPrivacy(settings) if settings.privacy.mode is PrivacyMode.central else None
    rng = np.random.default_rng([seed, len(nodes), rounds])
    epsilons: list[float] = []
    for _ in range(rounds):
        updates = [
            train_node(node_settings, arrays, NodeData(node.images, node.labels, int(rng.integers(2**31))), kit)
            for node, kit in zip(nodes, node_kits)
        ]
        epsilons = [update.result.epsilon for update in updates if update.result.epsilon is not None]
        view = secure_sum(settings, arrays, updates, privacy)
        arrays = array_vector.unflatten(array_vector.flatten(arrays) + view.update_sum / view.total_weight, arrays)
    if privacy is not None:
        return GlobalModel(arrays, privacy.metrics()["dp-epsilon"])
    return GlobalModel(arrays, max(epsilons) if epsilons else None)
