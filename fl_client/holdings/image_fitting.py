"""A loaded dataset's images, all at once, fitted to the input the model is built for.

Proxy datasets come at their own size and channels (8x8 grey digits, 28x28 grey
Fashion-MNIST, 32x32 colour CIFAR-10); `holdings.image_size` and `holdings.channels`
decide what the model sees, so every source fits one model spec.
"""

import torch
import torch.nn.functional as F

# Images converted per step: bounds the float copy a large pool needs while it is resized.
_CHUNK = 4096
# ITU-R 601-2 luma in 16-bit fixed point, as Pillow's convert("L") computes it, so grey
# pools match grey images decoded from files.
_LUMA = (19595, 38470, 7471)


def fit_images(images: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """uint8 [N, 1 or 3, H, W] as uint8 [N, channels, image_size, image_size]."""
    if len(images) == 0:
        return images.new_empty((0, channels, image_size, image_size))
    return torch.cat([_fit_chunk(images[start : start + _CHUNK], image_size, channels)
                      for start in range(0, len(images), _CHUNK)])


def _fit_chunk(images: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    if images.shape[1] == 3 and channels == 1:
        images = _to_grey(images)  # before resizing: a third of the pixels to resize
    images = _resize(images, image_size)
    if images.shape[1] == 1 and channels == 3:
        images = images.expand(-1, 3, -1, -1)
    return images


def _to_grey(images: torch.Tensor) -> torch.Tensor:
    red, green, blue = images.to(torch.int32).unbind(dim=1)
    luma = (red * _LUMA[0] + green * _LUMA[1] + blue * _LUMA[2] + (1 << 15)) >> 16
    return luma.unsqueeze(1).to(torch.uint8)


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of uint8 [N, C, H, W] images to size x size, back to uint8."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    shrinking = size < max(images.shape[-2:])
    resized = F.interpolate(
        images.to(torch.float32), size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking
    )
    return resized.round_().clamp_(0, 255).to(torch.uint8)
