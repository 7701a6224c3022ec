"""Grad-CAM penalties as training methods: RRR-G and HINT (as the XIL typology framework)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from explainaug.explain import GradCAM, run_explainer
from explainaug.losses.cam_penalty import gradcam_terms, hint_penalty, rrr_gradcam_penalty
from explainaug.train.methods.annotation import MaskPenalty
from explainaug.typing import BatchAugment


class RRRGradCAM(MaskPenalty):
    """RRR-G: cross-entropy plus the squared normalised Grad-CAM (predicted class) inside the
    penalised region, downsampled to the CAM layer (``losses.cam_penalty``).

    The CAM comes from the training forward pass itself (no extra forward, no mode switch).
    By default the penalty is scaled to start at the size of the cross-entropy and the channel
    weights are held constant, as the XIL typology framework.

    Args:
        cam_layer: the CAM layer (dotted name); None: the model's default.
        second_order: differentiate Grad-CAM's channel weights too.
        annotation, previous_runs, penalty_weight, scale_penalty, augment: as
            :class:`~explainaug.train.methods.annotation.MaskPenalty`.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> masks = torch.zeros(4, 1, 32, 32, dtype=torch.bool)
        >>> batch = (torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]), masks)
        >>> method = RRRGradCAM(annotation="object", scale_penalty=False)
        >>> method.setup(model)
        >>> loss, metrics = method.training_step(model, batch, epoch=0)
        >>> float(metrics["penalty"]) > 0
        True
    """

    default_scaled = True

    def __init__(
        self,
        *,
        cam_layer: str | None = None,
        second_order: bool = False,
        annotation: str = "cue",
        previous_runs: str | Sequence[str | Path | nn.Module] | None = None,
        penalty_weight: float | None = None,
        scale_penalty: bool | None = None,
        augment: bool | BatchAugment | None = None,
    ) -> None:
        super().__init__(
            annotation=annotation,
            previous_runs=previous_runs,
            penalty_weight=penalty_weight,
            scale_penalty=scale_penalty,
            augment=augment,
        )
        self.cam_layer = cam_layer
        self.second_order = second_order
        self.live_explainer: GradCAM | None = None

    def setup(self, model: nn.Module) -> None:
        super().setup(model)
        self.live_explainer = run_explainer("gradcam", model, self.cam_layer, check_values=False)

    def _cam(self, model: nn.Module, x: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.live_explainer is None or self.live_explainer.model is not model:
            raise RuntimeError("call setup(model) with the model being trained first")
        return gradcam_terms(self.live_explainer, x, target, second_order=self.second_order)

    def terms(
        self, model: nn.Module, x: Tensor, y: Tensor, region: Tensor
    ) -> tuple[Tensor, Tensor]:
        logits, maps = self._cam(model, x, None)
        return logits, rrr_gradcam_penalty(maps, region)


class HINT(RRRGradCAM):
    """HINT: cross-entropy plus the squared difference between the normalised Grad-CAM (true
    class), upsampled to the input, and the region that should matter (the complement of the
    penalised region: the object mask with ``annotation="object"``). Arguments as
    :class:`RRRGradCAM`.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> masks = torch.ones(4, 1, 32, 32, dtype=torch.bool)
        >>> batch = (torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]), masks)
        >>> method = HINT(annotation="object", scale_penalty=False)
        >>> method.setup(model)
        >>> loss, metrics = method.training_step(model, batch, epoch=0)
        >>> loss.shape
        torch.Size([])
    """

    def terms(
        self, model: nn.Module, x: Tensor, y: Tensor, region: Tensor
    ) -> tuple[Tensor, Tensor]:
        logits, maps = self._cam(model, x, y)
        return logits, hint_penalty(maps, 1 - region)
