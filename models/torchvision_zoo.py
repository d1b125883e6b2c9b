"""torchvision's ResNet-18 and MobileNetV3-Small, built untrained and fitted to the holdings.

Weights are never downloaded (`weights=None`); a start from trained weights is a local
file named by `model.weights_path`. Both networks keep torchvision's BatchNorm layers, so
their running statistics travel and are averaged with the weights; a training batch of a
single example fails once a feature map has shrunk to 1x1 (8x8 inputs), so training loops
should not hand these models a trailing batch of one.
"""

from torch import nn

# Below this side the networks' 4x-downsampling ImageNet stems would leave too little
# image for the deeper stages, so the stems keep full resolution instead.
_SMALL_IMAGE_SIDE = 64


def build_resnet18(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """ResNet-18 with `in_channels` inputs and `num_classes` outputs.

    Images under 64 pixels get the CIFAR-style stem (3x3 stride-1 conv, no max-pool),
    so that a 32x32 image still reaches the last stage as 4x4 rather than 1x1.
    """
    from torchvision.models import resnet18  # on use: a small-CNN triage run skips torchvision

    model = resnet18(weights=None, num_classes=num_classes)
    if image_size < _SMALL_IMAGE_SIDE:
        model.conv1 = _stem_conv(in_channels, model.conv1.out_channels, kernel_size=3, stride=1)
        model.maxpool = nn.Identity()
    elif in_channels != model.conv1.in_channels:
        model.conv1 = _stem_conv(in_channels, model.conv1.out_channels, kernel_size=7, stride=2)
    return model


def build_mobilenet_v3_small(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """MobileNetV3-Small with `in_channels` inputs and `num_classes` outputs.

    Images under 64 pixels get a stride-1 first conv, halving the total downsampling;
    8x8 inputs still run (the deeper stages work on 1x1 maps).
    """
    from torchvision.models import mobilenet_v3_small

    model = mobilenet_v3_small(weights=None, num_classes=num_classes)
    first = model.features[0][0]
    assert isinstance(first, nn.Conv2d)
    stride = 1 if image_size < _SMALL_IMAGE_SIDE else 2
    if stride != first.stride[0] or in_channels != first.in_channels:
        model.features[0][0] = _stem_conv(in_channels, first.out_channels, kernel_size=3, stride=stride)
    return model


def _stem_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Conv2d:
    """A bias-free first conv, initialised as torchvision initialises its own."""
    conv = nn.Conv2d(
        in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=kernel_size // 2, bias=False
    )
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv
