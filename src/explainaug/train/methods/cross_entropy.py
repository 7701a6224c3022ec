"""Plain cross-entropy training (the baseline without explanations)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._validation import check_interval
from explainaug.train.methods.base import Method, accuracy, split_batch
from explainaug.typing import Batch, BatchAugment, Metrics


class CrossEntropy(Method):
    """Cross-entropy on ``model(x)``.

    Args:
        label_smoothing: as ``torch.nn.functional.cross_entropy``.
        augment: optional batched augmentation of the images (e.g. crop and flip).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
        >>> loss, metrics = CrossEntropy().training_step(model, batch, epoch=0)
        >>> loss.shape, sorted(metrics)
        (torch.Size([]), ['accuracy'])
    """

    def __init__(self, label_smoothing: float = 0.0, augment: BatchAugment | None = None) -> None:
        check_interval(label_smoothing, "label_smoothing", 0, 1, include_high=False)
        self.label_smoothing = label_smoothing
        self.augment = augment

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, Metrics]:
        x, y = split_batch(batch)
        if self.augment is not None:
            x = self.augment(x)
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        return loss, {"accuracy": accuracy(logits, y)}

    def __repr__(self) -> str:
        return f"CrossEntropy(label_smoothing={self.label_smoothing})"
