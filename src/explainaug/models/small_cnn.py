"""A small convolutional network for tests, the demo and quick experiments."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from explainaug.models.normalize import Normalize


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks with max-pooling between them, then a linear classifier.

    ``block3`` (the last spatial layer, 8x8 on 32x32 input) is the default CAM layer.

    Args:
        num_classes: classifier outputs; ``None`` returns the pooled features instead.
        width: channels of the first block (doubled in each later block).
        mean, std: per-channel statistics of the input normalisation (images come in [0, 1]).

    Example:
        >>> SmallCNN(num_classes=4, width=8)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 4])
    """

    default_cam_layer = "block3"

    def __init__(
        self,
        num_classes: int | None = 10,
        *,
        in_channels: int = 3,
        width: int = 16,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.block1 = _conv_block(in_channels, width)
        self.pool1 = nn.MaxPool2d(2)
        self.block2 = _conv_block(width, 2 * width)
        self.pool2 = nn.MaxPool2d(2)
        self.block3 = _conv_block(2 * width, 4 * width)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 4 * width
        self.fc: nn.Module = (
            nn.Identity() if num_classes is None else nn.Linear(4 * width, num_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.block1(self.normalize(x)))
        x = self.block3(self.pool2(self.block2(x)))
        return self.fc(self.avgpool(x).flatten(1))


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )
