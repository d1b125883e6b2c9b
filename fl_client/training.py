"""Local training of the global model on a node's holdings."""

import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fedtriage.errors import ConfigError
from fl_protocol.settings import TrainSettings


@dataclass(frozen=True)
class TrainResult:
    """What one round of local training produced (the weights stay in the model)."""

    loss: float
    num_examples: int
    seconds: float
    # Local DP-SGD only: the node's epsilon spent so far (at privacy.delta).
    epsilon: float | None = None


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; an explicit `cuda` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", "cuda, but this node has no CUDA device")
    return torch.device(name)


def build_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """The optimizer named in `train.optimizer`, with its learning rate and decay."""
    params = model.parameters()
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
        )
    if settings.optimizer == "adam":
        return torch.optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    raise ConfigError("train.optimizer", f"unknown optimizer {settings.optimizer!r}")


def train_locally(
    model: nn.Module,
    dataset: Dataset,
    settings: TrainSettings,
    seed: int,
    proximal_mu: float = 0.0,
) -> TrainResult:
    """Train `model` in place for `settings.local_epochs` epochs.

    With `proximal_mu > 0` the FedProx term mu/2 * ||w - w_global||^2 keeps the
    local model near the global one it started from. The loss reported is the mean
    over the last epoch. `seed` fixes shuffling and dropout, so a node repeats
    itself exactly for the same round.
    """
    started = time.perf_counter()
    device = resolve_device(settings.device)
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    size = len(dataset)  # type: ignore[arg-type]
    # A trailing batch of one breaks BatchNorm in training mode (ResNet, MobileNet).
    loader = DataLoader(
        dataset,
        batch_size=settings.batch_size,
        shuffle=True,
        generator=shuffle,
        drop_last=size > 1 and size % settings.batch_size == 1,
    )
    model.to(device).train()
    optimizer = build_optimizer(model, settings)
    criterion = nn.CrossEntropyLoss()
    anchor = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else []

    epoch_loss, seen = 0.0, 0
    for _ in range(settings.local_epochs):
        epoch_loss, seen = 0.0, 0
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            if anchor:
                drift = sum((p - a).pow(2).sum() for p, a in zip(model.parameters(), anchor))
                loss = loss + 0.5 * proximal_mu * drift
            loss.backward()
            optimizer.step()
            epoch_loss += float(loss.detach()) * len(labels)
            seen += len(labels)
    model.to("cpu")
    return TrainResult(
        loss=epoch_loss / seen if seen else float("nan"),
        num_examples=size,
        seconds=time.perf_counter() - started,
    )
