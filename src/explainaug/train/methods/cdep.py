"""CDEP: cross-entropy plus a penalty on the contextual decomposition of a region's part."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._shared import unpack_batch
from explainaug._validation import check_count, check_nonnegative
from explainaug.augment import crop_flip
from explainaug.losses.cdep import PIXEL_DRAWS, CDEPPenalty, nonzero_frequency, single_pixel_masks
from explainaug.train.methods.base import LazyAugment, Method, accuracy
from explainaug.typing import BatchAugment, Metrics

MASK_WEIGHT = 1000.0
"""CDEP's default weight with annotation masks: the middle of the official DecoyMNIST sweep
(1 ... 10000, ``mnist/DecoyMNIST/01_train_all.py``)."""

PIXEL_WEIGHT = 5000.0
"""CDEP's weight with the single-pixel prior: the official ColorMNIST demo
(``mnist/ColorMNIST/02_make_demo.py``)."""

ANNOTATIONS = ("cue", "object")


class CDEP(Method):
    """Contextual Decomposition Explanation Penalization (Rieger et al., ICML 2020).

    ``loss = CE(model(x), y) + penalty_weight * penalty``, where the penalty is CDEP's
    ``mean sigmoid(rel - irrel)`` of the contextual decomposition of the logits for the
    penalised region (``losses.CDEPPenalty``), summed over regions. The region is an annotation
    mask of each image, or, with ``annotation=None``, CDEP's annotation-free prior: ``pixels``
    single pixels (all channels), drawn with probability proportional to how often each pixel is
    non-zero in the training images (``begin`` measures it), each penalised on its own.

    Unlike the official code, which calls ``model.eval()`` inside the decomposition and leaves
    the model there, the cross-entropy uses the model in the mode it is given (train) and the
    decomposition reads BatchNorm's running statistics without changing the model's mode or
    statistics.

    Args:
        penalty_weight: the penalty's weight; None: 1000 with masks (``MASK_WEIGHT``), 5000
            with single pixels (``PIXEL_WEIGHT``), the official values.
        annotation: the penalised region: ``"cue"`` (the batch's cue masks) or ``"object"``
            (everything outside the object masks); None: the single-pixel prior.
        pixels: single pixels per step (the official 8), with ``annotation=None``.
        pixel_draw: ``"batch"`` (official: the same pixels for every image of a step) or
            ``"image"`` (each image draws its own: ``B`` times more distinct pixels per step at
            the same cost).
        augment: batched augmentation of the images, or True for ``augment.crop_flip``; only
            with the single-pixel prior (pixels are drawn on the augmented images), since masks
            would no longer match augmented images.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
        >>> loss, metrics = CDEP(annotation=None, pixels=2).training_step(model, batch, 0)
        >>> sorted(metrics)
        ['accuracy', 'cdep_penalty', 'cross_entropy']
    """

    def __init__(
        self,
        *,
        penalty_weight: float | None = None,
        annotation: str | None = "cue",
        pixels: int = 8,
        pixel_draw: str = "batch",
        augment: bool | BatchAugment | None = None,
    ) -> None:
        if annotation is not None and annotation not in ANNOTATIONS:
            raise ValueError(f"annotation must be one of {ANNOTATIONS} or None, got {annotation!r}")
        if pixel_draw not in PIXEL_DRAWS:
            raise ValueError(f"pixel_draw must be one of {PIXEL_DRAWS}, got {pixel_draw!r}")
        if annotation is not None and augment not in (None, False):
            raise ValueError(
                "CDEP: augment= only with the single-pixel prior (annotation=None); annotation "
                "masks would not follow the augmented images"
            )
        check_count(pixels, "pixels")
        if penalty_weight is None:
            penalty_weight = MASK_WEIGHT if annotation is not None else PIXEL_WEIGHT
        self.penalty_weight = check_nonnegative(penalty_weight, "penalty_weight")
        self.annotation = annotation
        self.pixels = pixels
        self.pixel_draw = pixel_draw
        self.augment = LazyAugment(augment, crop_flip)
        self.pixel_weights: Tensor | None = None
        self._penalty: CDEPPenalty | None = None

    def setup(self, model: nn.Module) -> None:
        """Trace ``model`` for the decomposition (a layer it cannot decompose is named here)."""
        self._penalty = CDEPPenalty(model)

    def begin(self, model: nn.Module, loader: Iterable) -> None:
        """Measure the pixels' non-zero frequency over the training images (single-pixel
        prior)."""
        if self.annotation is None:
            self.pixel_weights = nonzero_frequency(loader)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.pixel_weights is None else {"pixel_weights": self.pixel_weights}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pixel_weights = state.get("pixel_weights")

    def penalty(self, model: nn.Module) -> CDEPPenalty:
        """The penalty of ``model`` (built by ``setup``, or here for another model)."""
        if self._penalty is None or self._penalty.decomposition.model is not model:
            self._penalty = CDEPPenalty(model)
        return self._penalty

    def regions(self, batch: Any, x: Tensor) -> Tensor:
        """The penalised regions of the images ``x`` of ``batch``: ``[B, 1, H, W]`` masks, or
        ``[pixels, B or 1, 1, H, W]`` single pixels."""
        if self.annotation is None:
            weights = self.pixel_weights
            if weights is None:  # no begin(): the batch's own frequency
                weights = nonzero_frequency([x])
            return single_pixel_masks(x, self.pixels, weights, self.pixel_draw)
        unpacked = unpack_batch(batch)
        masks = unpacked.cue_masks if self.annotation == "cue" else unpacked.masks
        if masks is None:
            raise ValueError(
                f"CDEP(annotation={self.annotation!r}) needs batches with "
                f"{'cue masks (x, y, masks, cue_masks)' if self.annotation == 'cue' else 'object masks (x, y, masks)'}"
            )
        return masks if self.annotation == "cue" else ~masks

    def training_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        x, y, *_ = unpack_batch(batch)
        x = self.augment(x)
        logits = model(x)
        cross_entropy = F.cross_entropy(logits, y)
        penalty = self.penalty(model)(x, self.regions(batch, x))
        loss = cross_entropy + self.penalty_weight * penalty
        return loss, {
            "accuracy": accuracy(logits, y),
            "cross_entropy": cross_entropy.detach(),
            "cdep_penalty": penalty.detach(),
        }

    def __repr__(self) -> str:
        prior = (
            f"annotation={self.annotation!r}"
            if self.annotation is not None
            else f"annotation=None, pixels={self.pixels}, pixel_draw={self.pixel_draw!r}"
        )
        return f"CDEP(penalty_weight={self.penalty_weight}, {prior})"
