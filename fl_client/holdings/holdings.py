"""A node's images and labels, together with an account of what was left out.

Every loader returns `Holdings`. Its `HoldingsReport` travels to the server, so a
unit sees how many of its files were used and why the others were not: a skipped
file is never silent.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import TensorDataset

from fedtriage.errors import ConfigError
from media.walk import SkippedFile


class HoldingsError(ConfigError):
    """The holdings a setting points at cannot be used; names the setting, then the path to fix."""


def skip_reason_counts(skipped: Sequence[SkippedFile]) -> list[tuple[str, int]]:
    """Each reason with its count, most frequent first (ties by name), for stable reports."""
    counts = Counter(file.reason for file in skipped)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def check_image_shape(image_size: int, channels: int) -> None:
    """Every loader's input shape check: loaders are also called directly, not only after
    the settings were validated."""
    if image_size < 1:
        raise ConfigError("holdings.image_size", f"must be >= 1, got {image_size}")
    if channels not in (1, 3):
        raise ConfigError("holdings.channels", f"must be 1 or 3, got {channels}")


def checked_class_names(classes: Sequence[str], source: str) -> tuple[str, ...]:
    """`classes` as a tuple of distinct names; `source` names the holdings in errors."""
    names = tuple(classes)
    if not names:
        raise HoldingsError("holdings.classes", f"no classes given for {source}")
    if len(set(names)) != len(names):
        raise HoldingsError("holdings.classes", f"class names must be unique, got {list(names)}")
    return names


def describe_skipped_or(skipped: Sequence[SkippedFile], when_empty: str) -> str:
    """For an error about holdings with nothing usable: what was skipped, or `when_empty`."""
    if not skipped:
        return when_empty
    return f"{len(skipped)} skipped: {describe_skipped(skipped)}"


def describe_skipped(skipped: Sequence[SkippedFile]) -> str:
    """E.g. `2 not an image, 1 empty file`; `nothing skipped` when empty."""
    if not skipped:
        return "nothing skipped"
    return ", ".join(f"{count} {reason}" for reason, count in skip_reason_counts(skipped))


@dataclass
class HoldingsReport:
    """What a loader kept and what it skipped, for logs and the server's records."""

    source: str
    loaded: int
    skipped: list[SkippedFile] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for humans, e.g. `folder /x: 120 images loaded, 3 skipped (...)`."""
        line = f"{self.source}: {self.loaded} images loaded, {len(self.skipped)} skipped"
        if self.skipped:
            line += f" ({describe_skipped(self.skipped)})"
        return line

    def to_flat_dict(self) -> dict[str, int | str]:
        """Scalar counts only, so the report fits a Flower `ConfigRecord`.

        This is what a node tells the server: counts, never file names or the
        unit's local paths.
        """
        flat: dict[str, int | str] = {
            "loaded": self.loaded,
            "skipped": len(self.skipped),
        }
        for reason, count in skip_reason_counts(self.skipped):
            flat[f"skipped.{reason}"] = count
        for name, count in self.class_counts.items():
            flat[f"class.{name}"] = count
        return flat


@dataclass
class Holdings:
    """Images (uint8 [N, C, H, W]) and labels (int64 [N]) indexing into `classes`.

    Images stay uint8 until training asks for a dataset: four times less memory for
    a pool that a simulation process keeps cached.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    report: HoldingsReport

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or tuple(self.labels.shape) != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 [{self.images.shape[0]}], got {self.labels.dtype} {tuple(self.labels.shape)}"
            )

    @classmethod
    def from_decoded(
        cls,
        images: Sequence[np.ndarray],
        labels: Sequence[int],
        classes: tuple[str, ...],
        source: str,
        skipped: list[SkippedFile],
    ) -> "Holdings":
        """Holdings from a loader's decoded uint8 [C, H, W] images, with their report."""
        label_tensor = torch.tensor(labels, dtype=torch.int64)
        report = HoldingsReport(
            source=source,
            loaded=len(labels),
            skipped=skipped,
            class_counts=dict(zip(classes, _histogram(label_tensor, len(classes)))),
        )
        return cls(images=torch.from_numpy(np.stack(images)), labels=label_tensor, classes=classes, report=report)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray | Sequence[int]) -> "Holdings":
        """The examples at `indices`; the report describes the subset, skips kept."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64).reshape(-1))
        images = self.images[index]
        labels = self.labels[index]
        histogram = _histogram(labels, len(self.classes))
        report = HoldingsReport(
            source=self.report.source,
            loaded=int(labels.shape[0]),
            skipped=list(self.report.skipped),
            class_counts=dict(zip(self.classes, histogram)),
        )
        return Holdings(images=images, labels=labels, classes=self.classes, report=report)

    def class_histogram(self) -> list[int]:
        """Number of examples per class index (length `len(classes)`)."""
        return _histogram(self.labels, len(self.classes))

    def as_dataset(self) -> TensorDataset:
        """(float32 images in [0, 1], int64 labels), ready for a DataLoader."""
        return TensorDataset(self.images.to(torch.float32).div_(255.0), self.labels)


def _histogram(labels: torch.Tensor, num_classes: int) -> list[int]:
    return [int(count) for count in torch.bincount(labels, minlength=num_classes)[:num_classes]]
