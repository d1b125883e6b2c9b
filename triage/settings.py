"""Typed settings of `fedtriage classify`, read from configs/triage/classify.yaml plus overrides."""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configs import CONFIG_DIR
from configs.compose import absolute_path, absolute_paths, compose_config, path_field, require, typed_settings

# Its own folder: keys such as `model` would otherwise read as the federation's config groups.
TRIAGE_CONFIG_DIR = CONFIG_DIR / "triage"
CLASSIFY_CONFIG = "classify"


@dataclass
class CategoryThreshold:
    """Files scored at or above `min_score` get VICS `category` (the highest matching wins)."""

    min_score: float
    category: int


@dataclass
class ClassifySettings:
    """Everything one triage run needs; see configs/triage/classify.yaml for the meaning of each."""

    source: str = path_field(required=True)
    out: str = path_field(required=True)
    model: str
    threshold: float
    vics_profile: str
    batch_size: int
    decode_workers: int
    torch_threads: int
    max_image_pixels: int
    max_file_mb: float
    progress: bool
    allow_pickle: bool
    source_root: str | None = path_field()
    model_version: str | None = None
    tracking_uri: str | None = None
    known_hashes: list[str] = path_field(many=True)
    relevant_classes: list[str] | None = None
    category_thresholds: list[CategoryThreshold] = field(default_factory=list)
    case_number: str | None = None


def load_classify_settings(overrides: list[str], base: Path | None = None) -> ClassifySettings:
    """configs/triage/classify.yaml with `key=value` overrides; paths made absolute against `base`."""
    config = compose_config(overrides, config_name=CLASSIFY_CONFIG, config_dir=TRIAGE_CONFIG_DIR)
    settings = typed_settings(ClassifySettings, config)
    base = base or Path.cwd()
    absolute_paths(settings, base)
    # `model` is a path only when it names a file (else an MLflow URI or a registered name).
    if Path(settings.model).expanduser().exists() or settings.model.endswith((".pt", ".pth")):
        settings.model = absolute_path(settings.model, base)
    _check(settings)
    return settings


def _check(settings: ClassifySettings) -> None:
    require(Path(settings.source).exists(), "source", f"{settings.source} does not exist")
    require(0.0 <= settings.threshold <= 1.0, "threshold", f"must be in [0, 1], got {settings.threshold}")
    for index, rule in enumerate(settings.category_thresholds):
        require(0.0 <= rule.min_score <= 1.0, f"category_thresholds.{index}.min_score", "must be in [0, 1]")
        require(rule.category >= 0, f"category_thresholds.{index}.category", "must be >= 0")
    require(settings.vics_profile.replace("_", "").isalnum(), "vics_profile", "letters, digits and _ only")
    require(settings.batch_size >= 1, "batch_size", f"must be >= 1, got {settings.batch_size}")
    require(settings.decode_workers >= 1, "decode_workers", f"must be >= 1, got {settings.decode_workers}")
    require(settings.torch_threads >= 1, "torch_threads", f"must be >= 1, got {settings.torch_threads}")
    require(settings.max_image_pixels >= 1, "max_image_pixels", "must be >= 1")
    require(settings.max_file_mb > 0 and math.isfinite(settings.max_file_mb), "max_file_mb", "must be > 0")


def settings_fingerprint(settings: ClassifySettings, model_name: str, model_version: str) -> dict[str, Any]:
    """What must not change between a run and its resumption."""
    return {
        "source": settings.source,
        "source_root": settings.source_root,
        "model": model_name,
        "model_version": model_version,
        "relevant_classes": list(settings.relevant_classes or []),
        "known_hashes": list(settings.known_hashes),
        "max_image_pixels": settings.max_image_pixels,
        "max_file_mb": settings.max_file_mb,
    }
