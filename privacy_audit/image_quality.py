"""How close a reconstruction is to the true images: PSNR and SSIM from scikit-image.

scikit-image (`skimage.metrics`) is the maintained reference implementation of both (SSIM
as Wang et al. 2004 define it), on plain numpy arrays: no second tensor library beside
torch. Images are floats in [0, 1] (data range 1).

An attacker does not know which reconstruction belongs to which true image, and a reader
wants to know whether any image leaked: each true image is matched one-to-one with a
reconstruction so that the summed PSNR is largest (the Hungarian method), in the attacker's
favour.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

DATA_RANGE = 1.0
# SSIM's uniform window: 7 pixels (scikit-image's default), or the largest odd size an image's side allows.
_LARGEST_WINDOW = 7


@dataclass(frozen=True)
class ImageScores:
    """Per true image: its matched reconstruction's index, PSNR (dB; inf when identical) and SSIM (1 when identical)."""

    matched: tuple[int, ...]
    psnr: tuple[float, ...]
    ssim: tuple[float, ...]

    @property
    def mean_psnr(self) -> float:
        return float(np.mean(self.psnr))

    @property
    def mean_ssim(self) -> float:
        return float(np.mean(self.ssim))

    @property
    def best_psnr(self) -> float:
        return float(np.max(self.psnr))


def psnr(truth: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio of `image` against `truth` ([C, H, W] in [0, 1]); inf when identical."""
    with np.errstate(divide="ignore"):
        return float(peak_signal_noise_ratio(truth, image, data_range=DATA_RANGE))


def ssim(truth: np.ndarray, image: np.ndarray) -> float:
    """Structural similarity of `image` against `truth` ([C, H, W] in [0, 1]); 1.0 when identical."""
    side = min(truth.shape[-2:])
    window = min(_LARGEST_WINDOW, side if side % 2 else side - 1)
    if truth.shape[0] == 1:
        return float(structural_similarity(truth[0], image[0], data_range=DATA_RANGE, win_size=window))
    return float(structural_similarity(truth, image, data_range=DATA_RANGE, win_size=window, channel_axis=0))


def matched_scores(truth: np.ndarray, reconstructed: np.ndarray) -> ImageScores:
    """Scores of each true image ([N, C, H, W]) against its best one-to-one matched reconstruction ([M >= N, ...])."""
    if reconstructed.shape[0] < truth.shape[0] or truth.shape[1:] != reconstructed.shape[1:]:
        raise ValueError(f"{tuple(reconstructed.shape)} reconstructions cannot match {tuple(truth.shape)} images")
    table = np.array([[psnr(true, image) for image in reconstructed] for true in truth])
    rows, columns = linear_sum_assignment(np.nan_to_num(table, posinf=1e6), maximize=True)
    matched = tuple(int(column) for _, column in sorted(zip(rows, columns)))
    return ImageScores(
        matched=matched,
        psnr=tuple(float(table[row, column]) for row, column in enumerate(matched)),
        ssim=tuple(ssim(truth[row], reconstructed[column]) for row, column in enumerate(matched)),
    )
