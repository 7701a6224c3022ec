"""Plain cross-entropy training (the baseline without explanations)."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._shared import unpack_batch
from explainaug._validation import check_interval
from explainaug.augment import crop_flip
from explainaug.train.methods.base import LazyAugment, Method, accuracy
from explainaug.typing import BatchAugment, Metrics


class CrossEntropy(Method):
    """Cross-entropy on ``model(x)``.

    Args:
        augment: batched augmentation of the images, or True for ``augment.crop_flip`` (random
            crop with padding, flip) of the images' size.
        label_smoothing: as ``torch.nn.functional.cross_entropy``.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
        >>> loss, metrics = CrossEntropy(augment=True).training_step(model, batch, epoch=0)
        >>> loss.shape, sorted(metrics)
        (torch.Size([]), ['accuracy'])
    """

    def __init__(
        self, *, augment: bool | BatchAugment | None = None, label_smoothing: float = 0.0
    ) -> None:
        check_interval(label_smoothing, "label_smoothing", 0, 1, include_high=False)
        self.label_smoothing = label_smoothing
        self.augment = LazyAugment(augment, crop_flip)

    def training_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        x, y, *_ = unpack_batch(batch)
        logits = model(self.augment(x))
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return loss, {"accuracy": accuracy(logits, y)}

    def __repr__(self) -> str:
        return f"CrossEntropy(augment={self.augment!r}, label_smoothing={self.label_smoothing})"
