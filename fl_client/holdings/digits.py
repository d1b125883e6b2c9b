"""scikit-learn's bundled 8x8 digits as holdings: proxy data that needs no download."""

import numpy as np
import torch

from fedtriage.errors import ConfigError
from fl_client.holdings.holdings import Holdings, HoldingsReport, check_image_shape
from fl_client.holdings.image_fitting import fit_images
from fl_protocol.settings import HoldingsSettings

# The digits hold pixel intensities 0..16; they are stretched to the uint8 range.
_DIGITS_MAX_INTENSITY = 16


def load_digits_holdings(settings: HoldingsSettings) -> Holdings:
    """The 1797 digits, resized and given channels as the settings ask.

    The same settings yield the same tensors on every node, so models built for
    `holdings.image_size` and `holdings.channels` fit whichever source is chosen.
    """
    from sklearn.datasets import load_digits  # on use: triage, which never reads digits, skips sklearn

    digits = load_digits()
    native_names = [str(name) for name in digits.target_names]
    classes = tuple(settings.classes) if settings.classes is not None else tuple(native_names)
    if len(classes) != len(native_names):
        raise ConfigError(
            "holdings.classes",
            f"the digits have {len(native_names)} classes, got {len(classes)} names: {list(classes)}",
        )
    check_image_shape(settings.image_size, settings.channels)

    scaled = np.rint(digits.images * (255.0 / _DIGITS_MAX_INTENSITY)).clip(0, 255)
    images = fit_images(torch.from_numpy(scaled.astype(np.uint8)).unsqueeze(1), settings.image_size, settings.channels)
    labels = torch.from_numpy(digits.target.astype(np.int64))

    counts = torch.bincount(labels, minlength=len(classes)).tolist()
    report = HoldingsReport(
        source="scikit-learn digits",
        loaded=len(labels),
        skipped=[],
        class_counts={name: int(count) for name, count in zip(classes, counts)},
    )
    return Holdings(images=images, labels=labels, classes=classes, report=report)
