"""Gradient inversion ("Inverting Gradients", Geiping et al. 2020) as the coordinator can run it.

Threat played: an honest-but-curious server. It follows the protocol and attacks only what it
receives (`server_view`): one node's plaintext update, or a cohort's secure (possibly noised)
mean. It knows the global model it sent and the nodes' training settings: a node that
trains one local step of plain SGD sends -lr * the gradient of its batch loss, and a secure
mean of such nodes is -lr * the mean of their gradients. It also knows each node's training
seed (a node derives it from the run's seed, the round and its own name, all known to the
server), so it replays the node's dropout masks, and it is granted each node's labels in the
order the node's loader drew them: an upper bound on what it could infer (iDLG recovers the
label of a single image from the last layer's bias gradient; batches are harder).

The attack optimises candidate images, one per image of every node, so that the gradient
they give points the way of the received update (cosine distance), with a total-variation
prior favouring natural images; Adam, step decay at 3/8, 5/8 and 7/8 of the iterations.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from fl_protocol.settings import NodeSettings
from privacy_audit.audited_model import ModelArrays, build_audited_model

_DECAY_POINTS = (3 / 8, 5 / 8, 7 / 8)


@dataclass(frozen=True)
class NodeKnowledge:
    """What the attacker knows of one node whose update the received object holds."""

    # The node's labels, in the order its loader drew the images.
    labels: torch.Tensor
    # The seed of the node's training (its dropout masks).
    seed: int


@dataclass(frozen=True)
class InversionTarget:
    """The model the server sent, what it received, and whose updates that holds."""

    global_arrays: ModelArrays
    # One node's update, or the cohort's mean update.
    received_delta: ModelArrays
    nodes: tuple[NodeKnowledge, ...]
    # [channels, height, width] of one image.
    image_shape: tuple[int, int, int]


@dataclass(frozen=True)
class InversionBudget:
    iterations: int
    step_size: float
    tv_weight: float


def invert_update(settings: NodeSettings, target: InversionTarget, budget: InversionBudget, seed: int) -> torch.Tensor:
    """The reconstructed images of every node, [N, C, H, W] in [0, 1] (nodes in order, then draw order).

    Runs under a forked RNG: replaying the nodes' seeds leaves the caller's generator as it was.
    """
    model = build_audited_model(settings, target.global_arrays).train()
    parameters = [parameter for _, parameter in model.named_parameters()]
    # The update points against the gradient: -delta is the direction the gradient takes.
    wanted = [
        -torch.from_numpy(np.asarray(target.received_delta[name], dtype=np.float32))
        for name, _ in model.named_parameters()
    ]
    wanted_norm = torch.sqrt(sum((part * part).sum() for part in wanted))
    counts = [int(node.labels.shape[0]) for node in target.nodes]
    generator = torch.Generator().manual_seed(seed)
    latent = torch.randn((sum(counts), *target.image_shape), generator=generator).requires_grad_(True)
    optimizer = torch.optim.Adam([latent], lr=budget.step_size)
    milestones = sorted({max(1, int(budget.iterations * point)) for point in _DECAY_POINTS})
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    with torch.random.fork_rng(devices=[]):
        for _ in range(budget.iterations):
            optimizer.zero_grad()
            images = torch.sigmoid(latent)
            gradient = torch.autograd.grad(
                _nodes_loss(model, images, target.nodes, counts), parameters, create_graph=True
            )
            dot = sum((g * w).sum() for g, w in zip(gradient, wanted))
            norm = torch.sqrt(sum((g * g).sum() for g in gradient))
            cost = 1 - dot / (norm * wanted_norm + 1e-12) + budget.tv_weight * total_variation(images)
            cost.backward()
            optimizer.step()
            schedule.step()
    return torch.sigmoid(latent).detach()


def _nodes_loss(
    model: torch.nn.Module, images: torch.Tensor, nodes: Sequence[NodeKnowledge], counts: Sequence[int]
) -> torch.Tensor:
    """The sum over nodes of each node's mean batch loss, each with the node's own dropout masks.

    Its gradient is proportional to the mean of the nodes' gradients: a secure mean under
    equal weighting, and one node's own gradient when there is one node.
    """
    total = torch.zeros(())
    start = 0
    for node, count in zip(nodes, counts):
        torch.manual_seed(node.seed)  # the node's training seeds torch right before its first batch
        total = total + F.cross_entropy(model(images[start : start + count]), node.labels)
        start += count
    return total


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels: small for natural images, large for noise."""
    vertical = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    return vertical + horizontal
