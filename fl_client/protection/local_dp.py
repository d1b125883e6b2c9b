"""Local DP-SGD (Opacus): each node privatizes its own training and keeps its own budget.

Per-sample gradients are clipped to `privacy.max_grad_norm` and noised; the node's
RDP ledger lives on its own disk (`privacy_ledger`, in its kit's state folder), so it
holds across runs, resumed ones included. A node refuses to train a round that would
take its epsilon past `privacy.epsilon_budget` (it then drops out of the round).
Every Poisson batch is a noisy step, an empty one included: skipping it would leave
no noise where DP-SGD's accounting counts a step, and show in the update that it was empty.
"""

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fl_client.kit import NodeKit
from fl_client.protection.privacy_ledger import LedgerEntry, NodePrivacyLedger
from fl_client.training import TrainResult, build_optimizer, resolve_device
from fl_protocol.settings import PrivacySettings, TrainSettings


def train_with_dpsgd(
    model: nn.Module,
    dataset: Dataset,
    train: TrainSettings,
    privacy: PrivacySettings,
    seed: int,
    kit: NodeKit,
) -> TrainResult:
    """DP-SGD training of `model` in place; the result carries the node's epsilon so far.

    The round is entered in the node's ledger before it trains (`PrivacyBudgetExhausted`
    when it would exceed the budget), so whatever happens next, it is counted.
    """
    from opacus import PrivacyEngine  # slow to import; only DP-SGD nodes need it

    started = time.perf_counter()
    size = len(dataset)  # type: ignore[arg-type]
    batch_size = min(train.batch_size, size)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed))
    entry = _planned_entry(loader, privacy.noise_multiplier, train.local_epochs)
    epsilon = NodePrivacyLedger(kit).reserve(entry, privacy.delta, privacy.epsilon_budget)

    torch.manual_seed(seed)
    device = resolve_device(train.device)
    model.to(device).train()
    engine = PrivacyEngine(accountant="rdp")
    private_model, optimizer, private_loader = engine.make_private(
        module=model,
        optimizer=build_optimizer(model, train),
        data_loader=loader,
        noise_multiplier=privacy.noise_multiplier,
        max_grad_norm=privacy.max_grad_norm,
    )
    # Summed, then divided by the batch's size: Opacus's "mean" reduction, and no NaN for an empty batch.
    criterion = nn.CrossEntropyLoss(reduction="sum")
    epoch_loss, seen = 0.0, 0
    for _ in range(train.local_epochs):
        epoch_loss, seen = 0.0, 0
        for images, labels in private_loader:
            # An empty Poisson batch (shaped by Opacus's loader) still takes its step: zero
            # clipped gradients plus the noise, as the accountant counts it.
            images, labels = images.to(device), labels.to(device)
            optimizer.zero_grad()
            summed = criterion(private_model(images), labels)
            (summed / max(len(labels), 1)).backward()
            optimizer.step()
            epoch_loss += float(summed.detach())
            seen += len(labels)
    private_model.remove_hooks()
    model.to("cpu")
    if engine.accountant.history != [entry]:
        # Opacus counted other steps than the ledger holds: release nothing (the entry stays, fail closed).
        raise RuntimeError(f"DP-SGD took steps {engine.accountant.history}, but the node's ledger entered {entry}")
    return TrainResult(
        loss=epoch_loss / seen if seen else float("nan"),
        num_examples=size,
        seconds=time.perf_counter() - started,
        epsilon=epsilon,
    )


def _planned_entry(loader: DataLoader, noise_multiplier: float, epochs: int) -> LedgerEntry:
    """The entry Opacus's accountant will record for `epochs` over the Poisson loader it makes of `loader`.

    Opacus 1.6 sets the rate to 1 / len(loader) and the batches per epoch to int(1 / rate), which for
    some lengths is one less than len(loader) (93 -> 92): ask Opacus rather than mirror its arithmetic.
    """
    from opacus.data_loader import DPDataLoader

    poisson = DPDataLoader.from_data_loader(loader)
    return float(noise_multiplier), float(poisson.sample_rate), epochs * len(poisson)
