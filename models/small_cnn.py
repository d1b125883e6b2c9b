"""A small convolutional network for small images (8x8 digits up to 64x64)."""

import torch
from torch import nn

# Images larger than this are halved after the first block, where it is cheapest, and
# maps at least this large are halved once more before the last block; an 8x8 image
# therefore reaches the last block as 4x4, a 64x64 one as 16x16.
_WORKING_SIDE = 8
# GroupNorm groups per layer, at most; fewer when the channel count is not a multiple.
_MAX_NORM_GROUPS = 8
# Side of the pooled feature map: 2x2 keeps the coarse layout that tells digits and
# shapes apart (global 1x1 pooling learned several times slower on digits).
_POOLED_SIDE = 2


class SmallCNN(nn.Module):
    """Three 3x3 conv blocks, 2x2 average pooling, dropout and a linear classifier.

    Normalisation is GroupNorm, not BatchNorm: BatchNorm keeps running statistics of
    each node's data, and with label-skewed nodes the averaged statistics fit no node.
    GroupNorm holds only learned weights, normalises each example on its own, and so
    averages like any other parameter. Adaptive pooling to a fixed 2x2 map makes the
    network accept any image size; `image_size` only decides where to max-pool, which
    keeps 64x64 images cheap.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        width: int = 32,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes)
        _check_positive("in_channels", in_channels)
        _check_positive("image_size", image_size)
        _check_positive("width", width)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")

        side = image_size
        layers: list[nn.Module] = [_conv_block(in_channels, width)]
        if side > _WORKING_SIDE:
            layers.append(nn.MaxPool2d(2))
            side //= 2
        layers.append(_conv_block(width, 2 * width))
        if side >= _WORKING_SIDE:
            layers.append(nn.MaxPool2d(2))
        layers.append(_conv_block(2 * width, 2 * width))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(_POOLED_SIDE)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * width * _POOLED_SIDE**2, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits of shape [batch, num_classes]."""
        features = self.pool(self.features(images)).flatten(1)
        return self.classifier(self.dropout(features))


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution, GroupNorm, ReLU; the conv has no bias since the norm adds one."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.GroupNorm(_group_count(out_channels), out_channels),
        nn.ReLU(),  # not in place: DP-SGD (Opacus) hooks need the activations intact
    )


def _group_count(channels: int) -> int:
    """The largest group count up to `_MAX_NORM_GROUPS` that divides `channels`."""
    return next(groups for groups in range(min(_MAX_NORM_GROUPS, channels), 0, -1) if channels % groups == 0)


def _check_positive(name: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
