"""The model zoo: names to constructors, how a model is scored, and how a trained model
travels with its spec. Knows nothing of Flower."""

from models.evaluation import EvaluationResult, evaluate_model
from models.registry import MODEL_NAMES, build_model
from models.small_cnn import SmallCNN
from models.spec import MODEL_SPEC_METADATA, ModelSpec, load_model_file, save_model_file
from models.torchvision_zoo import build_mobilenet_v3_small, build_resnet18
from models.weights import WeightsLoadReport, load_matching_weights

__all__ = [
    "MODEL_NAMES",
    "MODEL_SPEC_METADATA",
    "EvaluationResult",
    "ModelSpec",
    "SmallCNN",
    "WeightsLoadReport",
    "build_mobilenet_v3_small",
    "build_model",
    "build_resnet18",
    "evaluate_model",
    "load_matching_weights",
    "load_model_file",
    "save_model_file",
]
