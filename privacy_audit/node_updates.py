"""The nodes' side of an audited round: the project's own local training, nothing re-implemented.

A node trains the global model it received on its images with `fl_client.training`
(`train_locally`) or, under local DP-SGD, `fl_client.protection.local_dp` (Opacus, its
ledger in the node's kit), exactly as `fl_client.client_app.LocalWork.train` chooses. The
order in which the node's loader drew its images is recorded on the way: the attacker
is granted it with the labels (see `gradient_inversion`), and the truth is compared in it.
"""

from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from fl_client.kit import NodeKit
from fl_client.protection.local_dp import train_with_dpsgd
from fl_client.training import TrainResult, train_locally
from fl_protocol.protection.modes import PrivacyMode
from fl_protocol.settings import NodeSettings
from privacy_audit.audited_model import ModelArrays, build_audited_model, model_arrays


@dataclass(frozen=True)
class NodeData:
    """What one node trains on in a round: images (float [N, C, H, W] in [0, 1]), labels, its seed."""

    images: torch.Tensor
    labels: torch.Tensor
    seed: int


@dataclass(frozen=True)
class NodeUpdate:
    """A node's trained model and what its training reported; `drawn`: indices in the order its loader drew them."""

    trained: ModelArrays
    result: TrainResult
    drawn: tuple[int, ...]


class _RecordedDraws(Dataset):
    """The node's images, noting each index as the loader draws it (the loader's own order)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.drawn: list[int] = []

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.drawn.append(int(index))
        return self.images[index], self.labels[index]


def train_node(
    settings: NodeSettings, received: ModelArrays, data: NodeData, kit: NodeKit | None = None
) -> NodeUpdate:
    """One round of the node's local training on `data`, from the global model `received`.

    Local DP-SGD (privacy.mode=local_dpsgd) needs the node's kit: its ledger lives there.
    """
    model = build_audited_model(settings, received)
    dataset = _RecordedDraws(data.images, data.labels)
    if settings.privacy.mode is PrivacyMode.local_dpsgd:
        if kit is None:
            raise ValueError("local DP-SGD keeps the node's ledger in its kit: give one")
        result = train_with_dpsgd(model, dataset, settings.train, settings.privacy, seed=data.seed, kit=kit)
    else:
        result = train_locally(model, dataset, settings.train, seed=data.seed)
    return NodeUpdate(model_arrays(model), result, tuple(dataset.drawn))
