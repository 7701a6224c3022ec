"""CDEP: cross-entropy plus a penalty on the contextual decomposition of a region's part."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor, nn

from explainaug.losses.cdep import CDEPPenalty
from explainaug.train.methods.annotation import Annotation, MaskPenalty
from explainaug.typing import BatchAugment

MASK_WEIGHT = 1000.0
"""CDEP's default weight with annotation masks: the middle of the official DecoyMNIST sweep
(1 ... 10000, ``mnist/DecoyMNIST/01_train_all.py``)."""

PIXEL_WEIGHT = 5000.0
"""CDEP's weight with the single-pixel prior: the official ColorMNIST demo
(``mnist/ColorMNIST/02_make_demo.py``)."""


class CDEP(MaskPenalty):
    """Contextual Decomposition Explanation Penalization (Rieger et al., ICML 2020).

    ``loss = CE(model(x), y) + penalty_weight * penalty``, the penalty CDEP's
    ``mean sigmoid(rel - irrel)`` of the contextual decomposition of the logits for the
    penalised region (``losses.CDEPPenalty``), summed over regions. The region is the cue
    masks, the complement of the object masks, a previous model's largest gradients, or, with
    ``annotation="pixels"``, CDEP's annotation-free prior: ``pixels`` single pixels (all
    channels) per step, each penalised on its own, drawn in proportion to how often a pixel is
    non-zero in the training images (measured by ``begin``).

    The official code calls ``model.eval()`` inside the decomposition and leaves the model
    there; here the cross-entropy uses the model as given (train mode) and the decomposition
    reads BatchNorm's running statistics (it decomposes the eval-mode logits), changing neither
    the model's mode nor its statistics. Other arguments as
    :class:`~explainaug.train.methods.annotation.MaskPenalty`.

    Args:
        annotation: ``"cue"``, ``"object"``, ``"previous"`` or ``"pixels"``.
        penalty_weight: None: the official 1000 with masks (``MASK_WEIGHT``), 5000 with
            single pixels (``PIXEL_WEIGHT``).
        pixels: single pixels per step with ``annotation="pixels"`` (official: 8).
        pixel_draw: ``"batch"`` (official: the same pixels for every image of a step, the
            default as the reference) or ``"image"`` (each image draws its own: ``B`` times more
            distinct pixels per step at the same cost, so fewer ``pixels`` cover as much).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
        >>> method = CDEP(annotation="pixels", pixels=2)
        >>> method.setup(model)
        >>> loss, metrics = method.training_step(model, batch, epoch=0)
        >>> sorted(metrics)
        ['accuracy', 'cross_entropy', 'penalty']
    """

    default_weight = MASK_WEIGHT
    single_pixels = True

    def __init__(
        self,
        *,
        annotation: str = "cue",
        previous_runs: str | Sequence[str | Path | nn.Module] | None = None,
        penalty_weight: float | None = None,
        scale_penalty: bool | None = None,
        pixels: int = 8,
        pixel_draw: str = "batch",
        augment: bool | BatchAugment | None = None,
    ) -> None:
        if penalty_weight is None and annotation == "pixels":
            penalty_weight = PIXEL_WEIGHT
        super().__init__(
            annotation=Annotation(annotation, previous_runs, pixels=pixels, pixel_draw=pixel_draw),
            penalty_weight=penalty_weight,
            scale_penalty=scale_penalty,
            augment=augment,
        )
        self._penalty: CDEPPenalty | None = None

    def setup(self, model: nn.Module) -> None:
        """Trace ``model`` for the decomposition (a layer it cannot decompose is named here)."""
        super().setup(model)
        self._penalty = CDEPPenalty(model)

    def terms(
        self, model: nn.Module, x: Tensor, y: Tensor, region: Tensor
    ) -> tuple[Tensor, Tensor]:
        if self._penalty is None or self._penalty.decomposition.model is not model:
            self._penalty = CDEPPenalty(model)
        return model(x), self._penalty(x, region)
