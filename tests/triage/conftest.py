"""What triage tests share: a small two-class model (disc, square) on 16-pixel inputs."""

from pathlib import Path

import pytest
import torch

from fl_protocol.run_config import load_settings
from models import ModelSpec, save_model_file


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = load_settings(["holdings=synthetic", "holdings.classes=[disc,square]", "holdings.image_size=16"])
    spec = ModelSpec.from_settings(settings)
    torch.manual_seed(0)
    return save_model_file(tmp_path_factory.mktemp("model") / "final_model.pt", spec.build(), spec)
