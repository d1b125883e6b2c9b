"""Every model of the zoo trains a round under every protection mode (the README's own examples)."""

from pathlib import Path

import pytest

from fl_protocol.protection.modes import ProtectionMode
from fl_protocol.run_config import load_settings
from models import MODEL_NAMES
from tests.support.inprocess_grid import federate_in_process
from tests.support.kits import SMALL_FEDERATION

pytestmark = pytest.mark.slow

# Each model's head: what CKKS encrypts here (the rest of the update travels under SecAgg).
HEADS = {"cnn": "classifier", "resnet18": "fc", "mobilenet_v3_small": "classifier"}


@pytest.mark.parametrize("mode", list(ProtectionMode))
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_every_model_trains_under_every_protection_mode(
    tmp_path: Path, model: str, mode: ProtectionMode
) -> None:
    overrides = [
        f"model={model}", f"secure={mode}", "federation.num_nodes=2", "federation.num_rounds=2",
        "train.local_epochs=1", f"output_dir={tmp_path}", "tracking.enabled=false", *SMALL_FEDERATION,
    ]
    if mode is ProtectionMode.ckks:
        overrides += [f"secure.ckks.encrypted_layers=[{HEADS[model]}]"]
    summary, _ = federate_in_process(load_settings(overrides))
    assert summary.status == "FINISHED" and summary.rounds_completed == 2, summary.error
    assert summary.final_metrics["train/train-loss"] > 0
