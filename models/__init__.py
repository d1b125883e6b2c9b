"""The model zoo: names to constructors, and how a model is scored. Knows nothing of Flower."""

from models.evaluation import EvaluationResult, evaluate_model
from models.registry import MODEL_NAMES, build_model
from models.small_cnn import SmallCNN
from models.torchvision_zoo import build_mobilenet_v3_small, build_resnet18
from models.weights import WeightsLoadReport, load_matching_weights

__all__ = [
    "MODEL_NAMES",
    "EvaluationResult",
    "SmallCNN",
    "WeightsLoadReport",
    "build_mobilenet_v3_small",
    "build_model",
    "build_resnet18",
    "evaluate_model",
    "load_matching_weights",
]
