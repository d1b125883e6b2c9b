"""Generated pictures for tests of perceptual hashing, and the edits a copy of a picture goes through."""

import io

import numpy as np
from PIL import Image, ImageDraw


def textured_picture(seed: int, width: int = 320, height: int = 240) -> Image.Image:
    """Shapes over a wavy background with a little noise: a synthetic picture of high PDQ quality."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    phases = rng.uniform(0, 2 * np.pi, 3)
    periods = rng.uniform(9, 40, 3)
    background = np.stack(
        [128 + 60 * np.sin(x / periods[c] + y / periods[(c + 1) % 3] + phases[c]) for c in range(3)], -1
    )
    picture = Image.fromarray(background.astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(8):
        x0, y0 = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        box = (x0, y0, x0 + int(rng.integers(30, width // 2)), y0 + int(rng.integers(30, height // 2)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    noisy = np.asarray(picture).astype(np.int16) + rng.integers(-12, 13, (height, width, 1))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def as_jpeg(picture: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def cropped(picture: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(picture.width * fraction), round(picture.height * fraction)
    return picture.crop((dx, dy, picture.width - dx, picture.height - dy))
