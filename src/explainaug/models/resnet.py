"""CIFAR-style ResNet-18 and ResNet-50: 3x3 stride-1 stem, no max-pool.

Layer names follow torchvision (``conv1``, ``bn1``, ``layer1`` ... ``layer4``, ``fc``; blocks with
``conv1``/``bn1``/``conv2``/``bn2``/(``conv3``/``bn3``)/``downsample``). Every ReLU is its own
non-inplace ``nn.ReLU`` module (``relu1``, ``relu2`` inside blocks, ``relu`` after the residual
add), so module hooks such as guided backpropagation see each ReLU exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from explainaug.models.normalize import Normalize


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 convolutions with a residual connection (ResNet-50/101)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = _shortcut(in_planes, planes * self.expansion, stride)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class CifarResNet(nn.Module):
    """ResNet for 32x32 / 64x64 images: 3x3 stem, no max-pool, global average pool.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        num_blocks: blocks per stage, e.g. ``(2, 2, 2, 2)`` for ResNet-18.
        num_classes: size of the ``fc`` output; ``None`` makes ``fc`` an identity so the
            model returns its pooled features (an encoder for ``ContrastiveModel``).
        width: channels of the first stage (64 in the paper; smaller for tests).
        mean, std: per-channel statistics of the input normalisation (images come in [0, 1]).

    Example:
        >>> model = CifarResNet(BasicBlock, (2, 2, 2, 2), num_classes=10, width=8)
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    default_cam_layer = "layer4"

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: tuple[int, ...],
        num_classes: int | None = 100,
        *,
        width: int = 64,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if len(num_blocks) != 4:
            raise ValueError(f"num_blocks must give 4 stages, got {num_blocks}")
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        in_planes = width
        stages = []
        for index, blocks in enumerate(num_blocks):
            planes, stride = width * 2**index, 1 if index == 0 else 2
            layers = []
            for block_stride in [stride] + [1] * (blocks - 1):
                layers.append(block(in_planes, planes, block_stride))
                in_planes = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = in_planes
        self.fc: nn.Module = (
            nn.Identity() if num_classes is None else nn.Linear(in_planes, num_classes)
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(self.normalize(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet18(num_classes: int | None = 100, **options: Any) -> CifarResNet:
    """CIFAR ResNet-18 (512-d features at width 64); ``options``: ``width``, ``mean``, ``std`` of
    :class:`CifarResNet`.

    Example:
        >>> resnet18(num_classes=None, width=8)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 64])
    """
    return CifarResNet(BasicBlock, (2, 2, 2, 2), num_classes, **options)


def resnet50(num_classes: int | None = 100, **options: Any) -> CifarResNet:
    """CIFAR ResNet-50 (2048-d features at width 64), the ExCon/SupCon backbone; ``options`` as
    :func:`resnet18`.

    Example:
        >>> resnet50(num_classes=10, width=8)(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """
    return CifarResNet(Bottleneck, (3, 4, 6, 3), num_classes, **options)
