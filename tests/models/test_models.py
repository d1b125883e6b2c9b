"""The model zoo: every model fits every holdings shape, builds repeatably, and fails on
bad settings with an error that names the setting."""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.datasets import load_digits
from torch import nn

from fedtriage.errors import ConfigError
from fl_protocol.settings import ModelSettings
from models import MODEL_NAMES, SmallCNN, build_model, load_matching_weights
from tests.support.project import PROJECT_DIR

REPO_ROOT = PROJECT_DIR
SHAPES = [(1, 8), (3, 32), (3, 64)]


def _build(name: str, num_classes: int = 10, in_channels: int = 1, image_size: int = 8, **settings) -> nn.Module:
    return build_model(ModelSettings(name=name, **settings), num_classes, in_channels, image_size)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize(("in_channels", "image_size"), SHAPES)
@pytest.mark.parametrize("num_classes", [2, 10])
def test_every_model_gives_one_logit_per_class(name: str, in_channels: int, image_size: int, num_classes: int) -> None:
    model = _build(name, num_classes, in_channels, image_size).eval()

    with torch.no_grad():
        logits = model(torch.randn(2, in_channels, image_size, image_size))

    assert logits.shape == (2, num_classes)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_on_8x8_images_in_batches_of_two(name: str) -> None:
    model = _build(name, num_classes=3, in_channels=1, image_size=8).train()

    loss = nn.functional.cross_entropy(model(torch.randn(2, 1, 8, 8)), torch.tensor([0, 2]))
    loss.backward()

    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_model_configs_name_known_models_with_accepted_params() -> None:
    config_files = sorted((REPO_ROOT / "configs" / "model").glob("*.yaml"))
    names = set()
    for config_file in config_files:
        config = OmegaConf.to_container(OmegaConf.load(config_file))
        model = _build(config["name"], params=config["params"], weights_path=config["weights_path"])
        assert isinstance(model, nn.Module)
        names.add(config["name"])

    assert names == set(MODEL_NAMES)


def test_small_cnn_stays_cheap_at_width_32() -> None:
    model = SmallCNN(num_classes=10, in_channels=1, image_size=8, width=32)

    assert sum(p.numel() for p in model.parameters()) < 200_000


def test_small_cnn_holds_no_batch_statistics() -> None:
    """Nothing but learned weights, so federated averaging averages everything it should."""
    model = SmallCNN(num_classes=10, in_channels=3, image_size=32)

    assert list(model.buffers()) == []


def test_cnn_params_shape_the_model() -> None:
    model = _build("cnn", params={"width": 8, "dropout": 0.0})

    assert isinstance(model, SmallCNN)
    assert model.classifier.in_features == 2 * 8 * 2 * 2  # 2*width channels, 2x2 pooled
    assert model.dropout.p == 0.0


def test_small_cnn_learns_a_few_digits() -> None:
    images, labels = load_digits(return_X_y=True)
    x = torch.from_numpy((images[:64] / 16.0).astype(np.float32)).reshape(-1, 1, 8, 8)
    y = torch.from_numpy(labels[:64])
    torch.manual_seed(0)
    model = SmallCNN(num_classes=10, in_channels=1, image_size=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    for _ in range(40):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    assert accuracy >= 0.9


def test_resnet18_keeps_small_images_large_enough_for_its_last_stage() -> None:
    model = _build("resnet18", in_channels=3, image_size=32).eval()
    seen: list[torch.Size] = []
    model.layer4.register_forward_hook(lambda _module, _inputs, output: seen.append(output.shape))

    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))

    assert seen[0][-2:] == (4, 4)


def test_resnet18_keeps_the_imagenet_stem_from_64_pixels() -> None:
    model = _build("resnet18", in_channels=1, image_size=64).eval()
    seen: list[torch.Size] = []
    model.layer4.register_forward_hook(lambda _module, _inputs, output: seen.append(output.shape))

    with torch.no_grad():
        model(torch.randn(1, 1, 64, 64))

    assert seen[0][-2:] == (2, 2)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_init_is_repeatable_under_a_seed(name: str) -> None:
    torch.manual_seed(7)
    first = _build(name).state_dict()
    torch.manual_seed(7)
    second = _build(name).state_dict()
    torch.manual_seed(8)
    other = _build(name).state_dict()

    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_unknown_model_name_names_the_setting_and_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        _build("vgg16")

    assert caught.value.key == "model.name"
    assert str(caught.value) == (
        "model.name: unknown model 'vgg16'; choose one of cnn, resnet18, mobilenet_v3_small"
    )


@pytest.mark.parametrize(("name", "params", "key"), [
    ("cnn", {"width": 16, "depth": 3}, "model.params.depth"),
    ("resnet18", {"width": 32}, "model.params.width"),
    ("mobilenet_v3_small", {"dropout": 0.2}, "model.params.dropout"),
    ("cnn", {"num_classes": 3}, "model.params.num_classes"),
])
def test_param_the_model_does_not_take_names_the_param(name: str, params: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _build(name, params=params)

    assert caught.value.key == key


def test_param_value_the_model_rejects_names_model_params() -> None:
    with pytest.raises(ConfigError) as caught:
        _build("cnn", params={"dropout": 1.5})

    assert caught.value.key == "model.params"
    assert "dropout" in caught.value.problem


def test_missing_weights_file_names_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "absent.pt"

    with pytest.raises(ConfigError) as caught:
        _build("cnn", weights_path=str(missing))

    assert caught.value.key == "model.weights_path"
    assert str(missing) in caught.value.problem
    assert caught.value.problem.endswith("not found")


def test_weights_from_a_model_with_other_classes_load_all_but_the_classifier(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(1)
    source = _build("cnn", num_classes=10)
    weights = tmp_path / "cnn-10.pt"
    torch.save(source.state_dict(), weights)

    torch.manual_seed(2)
    with caplog.at_level(logging.INFO, logger="fedtriage.models"):
        target = _build("cnn", num_classes=3, weights_path=str(weights))

    loaded, own = target.state_dict(), source.state_dict()
    assert torch.equal(loaded["features.0.0.weight"], own["features.0.0.weight"])
    assert torch.equal(loaded["features.3.0.weight"], own["features.3.0.weight"])
    assert loaded["classifier.weight"].shape == (3, 256)
    log = caplog.text
    assert f"loaded {len(own) - 2} of {len(own)} model tensors" in log
    assert "classifier.weight" in log and "classifier.bias" in log


def test_weights_skip_the_first_conv_when_the_channels_differ(tmp_path: Path) -> None:
    source = _build("resnet18", num_classes=10, in_channels=3, image_size=32)
    weights = tmp_path / "resnet18-rgb.pt"
    torch.save(source.state_dict(), weights)
    target = _build("resnet18", num_classes=2, in_channels=1, image_size=32)

    report = load_matching_weights(target, weights)

    assert set(report.shape_mismatch) == {"conv1.weight", "fc.weight", "fc.bias"}
    assert report.not_in_model == () and report.not_in_file == ()
    assert torch.equal(target.state_dict()["layer4.1.conv2.weight"], source.state_dict()["layer4.1.conv2.weight"])
    assert torch.equal(target.state_dict()["bn1.running_var"], source.state_dict()["bn1.running_var"])


@pytest.mark.parametrize("checkpoint_key", ["model_state", "state_dict"])
def test_weights_nested_in_a_checkpoint_load(tmp_path: Path, checkpoint_key: str) -> None:
    source = _build("cnn")
    weights = tmp_path / "checkpoint.pt"
    torch.save({checkpoint_key: source.state_dict(), "server_round": 3}, weights)

    target = _build("cnn", weights_path=str(weights))

    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items())


def test_weights_of_another_architecture_name_the_setting(tmp_path: Path) -> None:
    weights = tmp_path / "mobilenet.pt"
    torch.save(_build("mobilenet_v3_small").state_dict(), weights)

    with pytest.raises(ConfigError) as caught:
        _build("cnn", weights_path=str(weights))

    assert caught.value.key == "model.weights_path"
    assert caught.value.problem.startswith("no tensor matches model SmallCNN")


def test_weights_file_that_is_no_state_dict_names_the_setting(tmp_path: Path) -> None:
    weights = tmp_path / "notes.pt"
    weights.write_text("not a tensor file")

    with pytest.raises(ConfigError) as caught:
        _build("cnn", weights_path=str(weights))

    assert caught.value.key == "model.weights_path"


def test_importing_models_leaves_flower_and_mlflow_out() -> None:
    code = "import models, sys; assert not {'flwr', 'mlflow'} & set(sys.modules), sorted(sys.modules)"

    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)

    assert completed.returncode == 0, completed.stderr
