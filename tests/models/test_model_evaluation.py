"""How a model is scored: loss, accuracy, macro-F1 and two-class ROC-AUC, on crafted
datasets whose right answers are known."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from fl_protocol import records
from models import EvaluationResult, evaluate_model


def _oracle(num_classes: int) -> nn.Module:
    """A real linear model that scores each one-hot input as its own class, confidently."""
    model = nn.Linear(num_classes, num_classes)
    with torch.no_grad():
        model.weight.copy_(20.0 * torch.eye(num_classes))
        model.bias.zero_()
    return model


def _dataset(inputs: list[int], labels: list[int], num_classes: int) -> TensorDataset:
    """One-hot inputs (what the oracle will predict) paired with the true labels."""
    one_hot = nn.functional.one_hot(torch.tensor(inputs), num_classes).float()
    return TensorDataset(one_hot, torch.tensor(labels))


def test_perfect_model_scores_full_accuracy_and_macro_f1() -> None:
    labels = [0, 1, 2, 2, 1, 0, 2]
    result = evaluate_model(_oracle(3), _dataset(labels, labels, 3), batch_size=3, num_classes=3)

    assert result.accuracy == 1.0
    assert result.macro_f1 == 1.0
    assert result.loss < 1e-6
    assert result.num_examples == 7


def test_scores_of_known_mistakes() -> None:
    # Predicted 0, 1, 1, 1 for true 0, 0, 1, 1: F1 is 2/3 for class 0 and 4/5 for class 1.
    dataset = _dataset([0, 1, 1, 1], [0, 0, 1, 1], 2)

    result = evaluate_model(_oracle(2), dataset, batch_size=3)

    assert result.accuracy == 0.75
    assert result.macro_f1 == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_loss_is_the_mean_cross_entropy_over_uneven_batches() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    inputs, labels = torch.randn(7, 4), torch.tensor([0, 1, 2, 0, 1, 2, 0])

    result = evaluate_model(model, TensorDataset(inputs, labels), batch_size=3)

    with torch.no_grad():
        expected = nn.functional.cross_entropy(model(inputs), labels).item()
    assert result.loss == pytest.approx(expected, rel=1e-6)


def test_classes_absent_from_the_dataset_count_when_num_classes_is_given() -> None:
    dataset = _dataset([0, 1, 1], [0, 1, 1], 3)

    observed_only = evaluate_model(_oracle(3), dataset, batch_size=8)
    all_classes = evaluate_model(_oracle(3), dataset, batch_size=8, num_classes=3)

    assert observed_only.macro_f1 == 1.0
    assert all_classes.macro_f1 == pytest.approx(2 / 3)


def test_two_classes_get_a_roc_auc() -> None:
    # The positive-class score grows with the second input; the positive scored -1 is
    # outranked by the negative scored 1, so 5 of the 6 positive-negative pairs are ordered.
    scores = torch.tensor([-2.0, 1.0, 2.0, -1.0, 3.0])
    inputs = torch.stack([torch.zeros(5), scores / 20.0], dim=1)  # the oracle scales by 20
    dataset = TensorDataset(inputs, torch.tensor([0, 0, 1, 1, 1]))

    result = evaluate_model(_oracle(2), dataset, batch_size=2, num_classes=2)

    assert result.roc_auc == pytest.approx(5 / 6)
    assert result.to_metrics()["eval-roc-auc"] == result.roc_auc


def test_three_classes_get_no_roc_auc() -> None:
    labels = [0, 1, 2]
    result = evaluate_model(_oracle(3), _dataset(labels, labels, 3), batch_size=2)

    assert result.roc_auc is None
    assert "eval-roc-auc" not in result.to_metrics()


def test_two_classes_of_which_one_is_absent_get_no_roc_auc() -> None:
    result = evaluate_model(_oracle(2), _dataset([1, 1], [1, 1], 2), batch_size=2, num_classes=2)

    assert result.roc_auc is None


def test_empty_dataset_scores_nan_over_zero_examples() -> None:
    empty = TensorDataset(torch.empty(0, 3), torch.empty(0, dtype=torch.long))

    result = evaluate_model(_oracle(3), empty, batch_size=4, num_classes=3)

    assert result.num_examples == 0
    assert math.isnan(result.loss) and math.isnan(result.accuracy)
    assert result.roc_auc is None


def test_dropout_is_off_while_scoring() -> None:
    model = nn.Sequential(_oracle(4), nn.Dropout(p=0.99)).train()
    labels = list(range(4)) * 8

    result = evaluate_model(model, _dataset(labels, labels, 4), batch_size=8)

    assert result.accuracy == 1.0


@pytest.mark.parametrize("training", [True, False])
def test_model_mode_is_restored(training: bool) -> None:
    model = nn.Sequential(_oracle(2), nn.Dropout(p=0.5)).train(training)

    evaluate_model(model, _dataset([0, 1], [0, 1], 2), batch_size=2)

    assert model.training is training
    assert all(module.training is training for module in model.modules())


def test_mixed_modes_of_submodules_are_restored() -> None:
    model = nn.Sequential(_oracle(2), nn.Dropout(p=0.5)).train()
    model[1].eval()

    evaluate_model(model, _dataset([0, 1], [0, 1], 2), batch_size=2)

    assert model.training and model[0].training
    assert not model[1].training


def test_model_scoring_another_number_of_classes_is_an_error() -> None:
    with pytest.raises(ValueError, match="num_classes=3"):
        evaluate_model(_oracle(2), _dataset([0, 1], [0, 1], 2), batch_size=2, num_classes=3)


def test_metric_names_are_the_ones_the_federation_reports() -> None:
    result = EvaluationResult(loss=0.5, accuracy=0.8, macro_f1=0.7, roc_auc=0.9, num_examples=10)

    assert result.to_metrics() == {
        records.EVAL_LOSS: 0.5,
        records.EVAL_ACCURACY: 0.8,
        records.EVAL_MACRO_F1: 0.7,
        records.EVAL_ROC_AUC: 0.9,
    }
    assert set(result.to_metrics(prefix="central-")) == {
        "central-loss", "central-accuracy", "central-macro-f1", "central-roc-auc"
    }
