"""Local DP-SGD (Opacus): each node privatizes its own training and keeps its own budget.

Per-sample gradients are clipped to `privacy.max_grad_norm` and noised; the node's
RDP ledger lives in its `Context.state`, and it refuses to train a round that would
take its epsilon past `privacy.epsilon_budget` (it then drops out of the round).
"""

import copy
import time

import torch
from flwr.app import ConfigRecord, Context
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fedtriage.errors import Refused
from fl_client.training import TrainResult, build_optimizer, resolve_device
from fl_protocol.settings import PrivacySettings, TrainSettings

_LEDGER_STATE = "local-dp-ledger"


class PrivacyBudgetExhausted(Refused):
    """Training another round would exceed this node's epsilon budget."""


def train_with_dpsgd(
    model: nn.Module,
    dataset: Dataset,
    train: TrainSettings,
    privacy: PrivacySettings,
    seed: int,
    context: Context,
) -> TrainResult:
    """DP-SGD training of `model` in place; the result carries the node's epsilon so far."""
    from opacus import PrivacyEngine  # slow to import; only DP-SGD nodes need it

    started = time.perf_counter()
    size = len(dataset)  # type: ignore[arg-type]
    batch_size = min(train.batch_size, size)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    batches = _poisson_batches(loader)
    engine = PrivacyEngine(accountant="rdp")
    engine.accountant.history = _ledger(context)
    trial = copy.deepcopy(engine.accountant)
    trial.history.append((privacy.noise_multiplier, 1 / batches, train.local_epochs * batches))
    if (planned := trial.get_epsilon(privacy.delta)) > privacy.epsilon_budget:
        raise PrivacyBudgetExhausted(
            f"this round would take the node's epsilon to {planned:.3f} > privacy.epsilon_budget="
            f"{privacy.epsilon_budget:g}; the node sits it out"
        )

    torch.manual_seed(seed)
    device = resolve_device(train.device)
    model.to(device).train()
    private_model, optimizer, private_loader = engine.make_private(
        module=model,
        optimizer=build_optimizer(model, train),
        data_loader=loader,
        noise_multiplier=privacy.noise_multiplier,
        max_grad_norm=privacy.max_grad_norm,
    )
    criterion = nn.CrossEntropyLoss()
    epoch_loss, seen = 0.0, 0
    for _ in range(train.local_epochs):
        epoch_loss, seen = 0.0, 0
        for images, labels in private_loader:
            if len(labels) == 0:  # Poisson sampling can draw an empty batch
                continue
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            loss = criterion(private_model(images), labels)
            loss.backward()
            optimizer.step()
            epoch_loss += float(loss.detach()) * len(labels)
            seen += len(labels)
    private_model.remove_hooks()
    model.to("cpu")
    context.state[_LEDGER_STATE] = ConfigRecord(
        {
            "noise": [float(entry[0]) for entry in engine.accountant.history],
            "rate": [float(entry[1]) for entry in engine.accountant.history],
            "steps": [int(entry[2]) for entry in engine.accountant.history],
        }
    )
    return TrainResult(
        loss=epoch_loss / seen if seen else float("nan"),
        num_examples=size,
        seconds=time.perf_counter() - started,
        epsilon=engine.get_epsilon(privacy.delta),
    )


def _poisson_batches(loader: DataLoader) -> int:
    """Batches per epoch of the Poisson loader Opacus makes of `loader`; its accountant records rate 1 / that.

    Opacus 1.6 sets the rate to 1 / len(loader) and the steps to int(1 / rate), which for some
    lengths is one less than len(loader) (93 -> 92): ask Opacus rather than mirror its arithmetic.
    """
    from opacus.data_loader import DPDataLoader

    return len(DPDataLoader.from_data_loader(loader))


def _ledger(context: Context) -> list[tuple[float, float, int]]:
    record = context.state.get(_LEDGER_STATE)
    if record is None:
        return []
    return list(zip(record["noise"], record["rate"], record["steps"]))  # type: ignore[arg-type]
