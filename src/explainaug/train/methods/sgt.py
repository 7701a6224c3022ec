"""Saliency Guided Training (Ismail et al. 2021) as a training method (labels only)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from explainaug._shared import unpack_batch
from explainaug._validation import check_fraction, check_nonnegative
from explainaug.augment import crop_flip
from explainaug.losses.sgt import SGTLoss
from explainaug.train.methods.base import LazyAugment, Method, accuracy
from explainaug.typing import BatchAugment, Metrics

SGT_FRACTION = 0.1
"""The official ``--featuresDroped`` default."""


class SaliencyGuidedTraining(Method):
    """Cross-entropy plus the KL divergence from the clean prediction to that of the images
    whose least salient pixels are random (``losses.SGTLoss``).

    Args:
        occlusion_ratio: the share of pixels replaced; None: 0.1 (the official default).
        penalty_weight: the KL term's weight; None: 1 (official).
        augment: batched augmentation applied first, or True for ``augment.crop_flip``.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
        >>> method = SaliencyGuidedTraining()
        >>> method.setup(model)
        >>> loss, metrics = method.training_step(model, batch, epoch=0)
        >>> sorted(metrics)
        ['accuracy', 'cross_entropy', 'kl']
    """

    def __init__(
        self,
        *,
        occlusion_ratio: float | None = None,
        penalty_weight: float | None = None,
        augment: bool | BatchAugment | None = None,
    ) -> None:
        self.fraction = SGT_FRACTION if occlusion_ratio is None else occlusion_ratio
        check_fraction(self.fraction, "occlusion_ratio")
        self.weight = (
            1.0 if penalty_weight is None else check_nonnegative(penalty_weight, "penalty_weight")
        )
        self.augment = LazyAugment(augment, crop_flip)
        self.loss: SGTLoss | None = None

    def setup(self, model: nn.Module) -> None:
        self.loss = SGTLoss(model, self.fraction, self.weight)

    def training_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        if self.loss is None or self.loss.model is not model:
            raise RuntimeError("call setup(model) with the model being trained first")
        x, y, *_ = unpack_batch(batch)
        logits, cross_entropy, kl = self.loss.terms(self.augment(x), y)
        return cross_entropy + self.weight * kl, {
            "accuracy": accuracy(logits, y),
            "cross_entropy": cross_entropy.detach(),
            "kl": kl.detach(),
        }

    def __repr__(self) -> str:
        return f"SaliencyGuidedTraining(fraction={self.fraction}, weight={self.weight:g})"
