"""PSNR and SSIM of reconstructions: sane at the extremes, and matched in the attacker's favour."""

import math

import numpy as np
import pytest

from privacy_audit.image_quality import matched_scores, psnr, ssim


def digits_like(count: int, channels: int = 1, side: int = 8) -> np.ndarray:
    return np.random.default_rng(7).uniform(0.0, 1.0, (count, channels, side, side))


@pytest.mark.parametrize("channels", [1, 3])
def test_identical_images_give_infinite_psnr_and_ssim_one(channels: int) -> None:
    image = digits_like(1, channels)[0]
    assert psnr(image, image.copy()) == math.inf
    assert ssim(image, image.copy()) == pytest.approx(1.0)


def test_more_noise_scores_lower() -> None:
    image = digits_like(1)[0]
    noise = np.random.default_rng(1).normal(0.0, 1.0, image.shape)
    slight, heavy = np.clip(image + 0.02 * noise, 0, 1), np.clip(image + 0.3 * noise, 0, 1)
    assert psnr(image, slight) > psnr(image, heavy) > 0
    assert ssim(image, slight) > ssim(image, heavy)


def test_each_true_image_is_matched_to_its_own_reconstruction_whatever_the_order() -> None:
    truth = digits_like(4)
    order = [2, 0, 3, 1]
    reconstructed = np.abs(truth[order] - 0.01)  # an error of 0.01 per pixel: 40 dB
    scores = matched_scores(truth, reconstructed)
    assert scores.matched == (1, 3, 0, 2)
    assert scores.mean_psnr == pytest.approx(40.0, abs=0.1)
    assert scores.best_psnr >= scores.mean_psnr


def test_fewer_reconstructions_than_images_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot match"):
        matched_scores(digits_like(3), digits_like(2))
