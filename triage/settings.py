"""Typed settings of `fedtriage classify`, read from configs/triage/classify.yaml plus overrides."""

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configs import CONFIG_DIR
from configs.compose import (
    absolute_path,
    absolute_paths,
    compose_config,
    one_of,
    path_field,
    require,
    typed_settings,
)
from media.video import VideoLimits

# Its own folder: keys such as `model` would otherwise read as the federation's config groups.
TRIAGE_CONFIG_DIR = CONFIG_DIR / "triage"
CLASSIFY_CONFIG = "classify"


@dataclass
class CategoryThreshold:
    """Files scored at or above `min_score` get VICS `category` (the highest matching wins)."""

    min_score: float
    category: int


@dataclass
class VideoSettings:
    """How videos are sampled: `video.*` in configs/triage/classify.yaml."""

    scan: str
    full_scan_max_s: float
    max_frames: int
    min_spacing_s: float
    max_gap_s: float
    scene_threshold: float
    max_declared_frames: int
    max_decoded_frames: int

    def limits(self, max_pixels: int, frame_side: int) -> VideoLimits:
        """These settings as the sampler's limits; frames are held to `max_pixels` as images are."""
        return VideoLimits(
            max_pixels=max_pixels,
            max_declared_frames=self.max_declared_frames,
            max_decoded_frames=self.max_decoded_frames,
            scan=self.scan,
            full_scan_max_s=self.full_scan_max_s,
            max_frames=self.max_frames,
            min_spacing_s=self.min_spacing_s,
            max_gap_s=self.max_gap_s,
            scene_threshold=self.scene_threshold,
            frame_side=frame_side,
        )


@dataclass
class PdqSettings:
    """Perceptual hashing of images and key frames: `pdq.*` in configs/triage/classify.yaml."""

    near_known_distance: int
    near_known: str
    group_distance: int
    min_quality: int


VIDEO_SCANS = ("auto", "key", "all")
_MAX_TIME_LIMIT_S = 86_400  # a day: beyond it, a setting is a mistake
NEAR_KNOWN_ACTIONS = ("score", "set_aside")


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
    file_time_limit_s: float
    progress: bool
    allow_pickle: bool
    video: VideoSettings
    pdq: PdqSettings
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
    require(0 < settings.file_time_limit_s <= _MAX_TIME_LIMIT_S, "file_time_limit_s",
            f"must be in (0, {_MAX_TIME_LIMIT_S}] seconds, got {settings.file_time_limit_s}")
    _check_video(settings.video)
    _check_pdq(settings.pdq)


def _check_video(video: VideoSettings) -> None:
    one_of(video.scan, VIDEO_SCANS, "video.scan")
    require(video.max_frames >= 1, "video.max_frames", f"must be >= 1, got {video.max_frames}")
    require(math.isfinite(video.full_scan_max_s) and video.full_scan_max_s >= 0, "video.full_scan_max_s",
            f"must be >= 0 seconds, got {video.full_scan_max_s}")
    for key in ("min_spacing_s", "max_gap_s"):
        value = getattr(video, key)
        require(math.isfinite(value) and value >= 0, f"video.{key}", f"must be >= 0 seconds, got {value}")
    require(0.0 < video.scene_threshold <= 1.0, "video.scene_threshold", "must be in (0, 1]")
    require(video.max_declared_frames >= 1, "video.max_declared_frames", "must be >= 1")
    require(video.max_decoded_frames >= 1, "video.max_decoded_frames", "must be >= 1")


def _check_pdq(pdq: PdqSettings) -> None:
    one_of(pdq.near_known, NEAR_KNOWN_ACTIONS, "pdq.near_known")
    for key in ("near_known_distance", "group_distance"):
        value = getattr(pdq, key)
        require(0 <= value <= 128, f"pdq.{key}", f"must be a Hamming distance in [0, 128] of 256 bits, got {value}")
    require(0 <= pdq.min_quality <= 100, "pdq.min_quality", f"must be in [0, 100], got {pdq.min_quality}")


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
        "video": dataclasses.asdict(settings.video),
        # Grouping and the threshold only shape the reports; these shape what is stored per file.
        "pdq": {
            "near_known_distance": settings.pdq.near_known_distance,
            "near_known": settings.pdq.near_known,
        },
    }
