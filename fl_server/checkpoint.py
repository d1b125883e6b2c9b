"""Checkpoints after every round: model, round, strategy state and history.

A crashed or stopped server loses at most the round in progress: a run resumes
from the newest checkpoint with `checkpoint.resume_from=<file>`. Files are written
atomically and load with `torch.load(weights_only=True)` (no pickled code).
Under central DP a checkpoint also carries the privacy ledger: a resumed run reports
the epsilon of every round so far and stops at the same budget an uninterrupted one
would. A central-DP run never resumes from a checkpoint without one.
"""

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import Strategy

from fedtriage.errors import ConfigError
from fl_protocol.protection.dp_ledger import LedgerEntry, ledger_entry
from fl_protocol.protection.modes import PrivacyMode
from fl_protocol.settings import RunSettings
from fl_server.round_record import RoundRecord

_FORMAT = "fedtriage-checkpoint-1"


@dataclass
class Checkpoint:
    """Everything needed to continue a run after `round`."""

    round: int
    model_state: dict[str, torch.Tensor]
    strategy_state: dict[str, torch.Tensor]
    history: list[RoundRecord]
    # The model's architecture, classes and input (`models.ModelSpec`), so that a
    # checkpoint can also be loaded for triage.
    model_spec: dict[str, Any] | None = None
    # The tracked (MLflow) run that wrote it, so that a run resuming from it can name that run.
    tracked_run_id: str | None = None
    # Central DP: every release accounted so far (`CentralPrivacy.ledger`); None when the
    # run had no central DP, or the checkpoint predates ledgers.
    privacy_ledger: list[LedgerEntry] | None = None

    def arrays(self) -> ArrayRecord:
        """The global model as Flower arrays."""
        return ArrayRecord(self.model_state)


def strategy_state(strategy: Strategy) -> dict[str, torch.Tensor]:
    """The strategy's numeric state (e.g. FedAdam's moments) as named tensors.

    Every attribute holding a dict of arrays (`m_t`, `v_t`, ...) is kept as
    `<attribute>/<array name>`; hyperparameters come from the configuration anyway.
    """
    state: dict[str, torch.Tensor] = {}
    for attribute, value in vars(strategy).items():
        if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            for name, array in value.items():
                state[f"{attribute}/{name}"] = torch.from_numpy(np.array(array, copy=True))
    return state


def restore_strategy_state(strategy: Strategy, state: dict[str, torch.Tensor]) -> None:
    """Put state saved by `strategy_state` back into a freshly built strategy."""
    restored: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in state.items():
        attribute, name = key.split("/", 1)
        restored.setdefault(attribute, {})[name] = tensor.numpy()
    for attribute, arrays in restored.items():
        setattr(strategy, attribute, arrays)


def save_checkpoint(directory: Path, checkpoint: Checkpoint, keep_last: int) -> Path:
    """Write `round_<N>.pt` atomically and drop checkpoints older than `keep_last`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"round_{checkpoint.round:04d}.pt"
    partial = path.with_suffix(".pt.partial")
    torch.save(
        {
            "format": _FORMAT,
            "round": checkpoint.round,
            "model_state": checkpoint.model_state,
            "strategy_state": checkpoint.strategy_state,
            "history": [dataclasses.asdict(record) for record in checkpoint.history],
            **({"model_spec": checkpoint.model_spec} if checkpoint.model_spec else {}),
            **({"tracked_run_id": checkpoint.tracked_run_id} if checkpoint.tracked_run_id else {}),
            **(
                {"privacy_ledger": [list(entry) for entry in checkpoint.privacy_ledger]}
                if checkpoint.privacy_ledger is not None
                else {}
            ),
        },
        partial,
    )
    os.replace(partial, path)
    for old in sorted(directory.glob("round_*.pt"))[:-keep_last]:
        old.unlink()
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint; a missing or foreign file names `checkpoint.resume_from`."""
    if not path.is_file():
        raise ConfigError("checkpoint.resume_from", f"no checkpoint file at {path}")
    try:
        raw: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ConfigError("checkpoint.resume_from", f"{path} is not a readable checkpoint: {err}") from err
    if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
        raise ConfigError("checkpoint.resume_from", f"{path} is not a fedtriage checkpoint")
    return Checkpoint(
        round=int(raw["round"]),
        model_state=raw["model_state"],
        strategy_state=raw["strategy_state"],
        history=[RoundRecord(**record) for record in raw["history"]],
        model_spec=raw.get("model_spec"),
        tracked_run_id=raw.get("tracked_run_id"),
        privacy_ledger=_ledger(path, raw.get("privacy_ledger")),
    )


def resumed_privacy_ledger(settings: RunSettings, checkpoint: Checkpoint) -> list[LedgerEntry] | None:
    """The central-DP ledger a run with `settings` continues from `checkpoint`, or None without central DP.

    A checkpoint without one (written by a run without central DP, or before ledgers were
    checkpointed) cannot say what was spent: resuming from it would restart epsilon at 0.
    """
    if settings.privacy.mode is not PrivacyMode.central:
        return None
    if checkpoint.privacy_ledger is None:
        raise ConfigError(
            "checkpoint.resume_from",
            f"{settings.checkpoint.resume_from} carries no central-DP privacy ledger (written without "
            "privacy=central, or by an older fedtriage), so the epsilon already spent is unknown; a privacy=central "
            "run cannot resume from it: start a fresh run",
        )
    return checkpoint.privacy_ledger


def _ledger(path: Path, raw: object) -> list[LedgerEntry] | None:
    """A checkpoint's ledger as (noise multiplier, sampling rate, steps) entries; a malformed one is refused."""
    if raw is None:
        return None
    try:
        return [ledger_entry(entry) for entry in raw]  # type: ignore[attr-defined]
    except (TypeError, ValueError) as err:
        raise ConfigError("checkpoint.resume_from", f"{path} has a malformed privacy ledger: {err}") from err
