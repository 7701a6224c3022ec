"""What the mask-based methods (RRR, RRR-G, HINT, CDEP) learn from, and the automatic penalty
scale.

``annotation`` (the setting of the same name) chooses the region whose explanation is
penalised:

- ``"cue"``: the cue masks (the shapes testbed's cue, or ``--cue-masks`` of a folder dataset);
- ``"object"``: the complement of the object masks (only the object should matter);
- ``"previous"``: Ross et al.'s find-another-explanation: the pixels where a previous model's
  input gradient is largest (of any channel, above 0.67 of the image's largest), united over
  the previous models; no annotation at all;
- ``"pixels"`` (CDEP only): ``pixels`` single pixels (all channels) per step, drawn in proportion
  to how often each pixel is non-zero in the training images (CDEP's ColorMNIST prior); no
  annotation at all.

The masks follow the images through the method's augmentation (crop and flip): images and
masks are augmented as one stack of channels, so the augmentation must be geometric.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._shared import preserved_model_state, unpack_batch
from explainaug._validation import check_count, check_nonnegative
from explainaug.losses.cdep import nonzero_frequency, single_pixel_masks
from explainaug.settings import ANNOTATIONS, PIXEL_DRAWS
from explainaug.train.methods.base import LazyAugment, Method, accuracy
from explainaug.typing import Batch, BatchAugment, Metrics

LARGEST_GRADIENT_CUTOFF = 0.67
"""Ross et al.'s ``largest_gradient_mask`` cutoff: features above this share of the largest."""


def penalised_region(batch: Batch, annotation: str) -> Tensor:
    """The region whose explanation is penalised, float ``[B, 1, H, W]`` in {0, 1}: the cue
    masks (``"cue"``) or the complement of the object masks (``"object"``).

    Raises:
        ValueError: the batch lacks the masks ``annotation`` needs (naming what came).

    Example:
        >>> masks = torch.zeros(1, 1, 2, 2, dtype=torch.bool)
        >>> masks[0, 0, 0, 0] = True
        >>> batch = Batch(torch.rand(1, 3, 2, 2), torch.tensor([0]), masks)
        >>> penalised_region(batch, "object").flatten().tolist()
        [0.0, 1.0, 1.0, 1.0]
    """
    if annotation == "cue":
        if batch.cue_masks is None:
            raise ValueError(
                "annotation 'cue' needs batches (x, y, masks, cue_masks): shapes with "
                "cue_correlation (DeviceLoader(..., cue_masks=True)) or folder with cue masks"
            )
        return batch.cue_masks.float()
    if annotation == "object":
        if batch.masks is None:
            raise ValueError(
                "annotation 'object' needs batches (x, y, masks) with object masks, got (x, y)"
            )
        return (~batch.masks.bool()).float()
    raise ValueError(f"penalised_region takes annotation 'cue' or 'object', got {annotation!r}")


def largest_gradient_region(model: nn.Module, x: Tensor) -> Tensor:
    """Ross et al.'s ``largest_gradient_mask`` of ``model`` for images ``x`` in [0, 1], per
    pixel: float ``[B, 1, H, W]``, 1 where the gradient of the predicted class's probability
    has, in some channel, a magnitude above ``LARGEST_GRADIENT_CUTOFF`` of the image's largest.
    The model's mode and BatchNorm statistics are left as they are (use an eval-mode model).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> region = largest_gradient_region(SmallCNN(num_classes=3, width=4).eval(),
        ...                                  torch.rand(2, 3, 8, 8))
        >>> region.shape, bool((region.flatten(1).sum(1) >= 1).all())
        (torch.Size([2, 1, 8, 8]), True)
    """
    with preserved_model_state(model), torch.enable_grad():
        inputs = x.detach().requires_grad_()
        probabilities = model(inputs).float().softmax(dim=1)
        (grads,) = torch.autograd.grad(probabilities.amax(dim=1).sum(), inputs)
    magnitude = grads.abs()
    largest = magnitude.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    return (magnitude > LARGEST_GRADIENT_CUTOFF * largest).any(dim=1, keepdim=True).float()


def load_previous(previous_runs: str | Sequence[str | Path | nn.Module]) -> list[nn.Module]:
    """The previous rounds' models: run folders (comma-separated in one string, as the
    ``previous_runs`` setting) loaded with ``explainaug.runs.load_run``, or models as given."""
    from explainaug.runs import load_run

    items = previous_runs.split(",") if isinstance(previous_runs, str) else previous_runs
    models = []
    for item in items:
        if isinstance(item, nn.Module):
            models.append(item)
            continue
        if not str(item).strip():
            raise ValueError(f"previous_runs holds an empty run folder: {previous_runs!r}")
        models.append(load_run(str(item).strip(), device="cpu")[0])
    if not models:
        raise ValueError("annotation 'previous' needs at least one previous run")
    return models


class Annotation:
    """The penalised region of each (augmented) batch, by ``annotation`` (see the module).

    Args:
        annotation: ``"cue"``, ``"object"``, ``"previous"`` or ``"pixels"``.
        previous_runs: for ``"previous"``: run folders (comma-separated) or models.
        pixels: for ``"pixels"``: single pixels per image and step (official: 8).
        pixel_draw: for ``"pixels"``: ``"batch"`` (official: the same pixels for every image
            of a step) or ``"image"`` (each image draws its own; see ``single_pixel_masks``).

    Example:
        >>> from explainaug.augment import crop_flip
        >>> masks = torch.ones(2, 1, 8, 8, dtype=torch.bool)
        >>> batch = (torch.rand(2, 3, 8, 8), torch.tensor([0, 1]), masks)
        >>> x, y, region = Annotation("object").augmented(crop_flip(8), batch)
        >>> x.shape, region.shape
        (torch.Size([2, 3, 8, 8]), torch.Size([2, 1, 8, 8]))
    """

    def __init__(
        self,
        annotation: str = "cue",
        previous_runs: str | Sequence[str | Path | nn.Module] | None = None,
        pixels: int = 8,
        pixel_draw: str = "batch",
    ) -> None:
        check_count(pixels, "pixels")
        if pixel_draw not in PIXEL_DRAWS:
            raise ValueError(f"pixel_draw must be one of {PIXEL_DRAWS}, got {pixel_draw!r}")
        if annotation not in ANNOTATIONS:
            raise ValueError(f"annotation must be one of {ANNOTATIONS}, got {annotation!r}")
        if (annotation == "previous") != (previous_runs is not None):
            raise ValueError(
                "give previous_runs exactly with annotation 'previous' (find-another-"
                f"explanation), got annotation {annotation!r} and previous_runs {previous_runs!r}"
            )
        self.annotation = annotation
        self.previous_runs = previous_runs
        self.previous: list[nn.Module] = []
        self.pixels = pixels
        self.pixel_draw = pixel_draw
        #: ``"pixels"``: each pixel's probability, ``[H * W]`` (``begin`` measures it).
        self.pixel_weights: Tensor | None = None

    def setup(self, model: nn.Module) -> None:
        """Load the previous models (eval mode, frozen) onto ``model``'s device."""
        if self.previous_runs is None:
            return
        device = next(model.parameters()).device
        self.previous = [
            previous.to(device).eval().requires_grad_(False)
            for previous in load_previous(self.previous_runs)
        ]

    def begin(self, loader: Iterable) -> None:
        """``"pixels"``: measure how often each pixel is non-zero over the training images
        (``nonzero_frequency``), the official probabilities of the drawn pixels."""
        if self.annotation == "pixels":
            self.pixel_weights = nonzero_frequency(loader)

    def augmented(self, augment: BatchAugment | None, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        """``(x, y, region)``: the batch's images augmented by ``augment`` (None: as they
        are) and the penalised region ``[B, 1, H, W]`` of the augmented images (``"pixels"``:
        ``[pixels, B or 1, 1, H, W]``, one pixel per region)."""
        x, y, *masks = unpack_batch(batch)
        if self.annotation == "pixels":
            x = x if augment is None else augment(x)
            weights = self.pixel_weights
            if weights is None:  # begin() has not run: the batch's own frequencies
                weights = nonzero_frequency([x])
            return x, y, single_pixel_masks(x, self.pixels, weights, self.pixel_draw)
        if self.annotation == "previous":
            x = x if augment is None else augment(x)
            if not self.previous:
                raise RuntimeError("call setup(model) before the first training step")
            regions = [largest_gradient_region(previous, x) for previous in self.previous]
            return x, y, torch.stack(regions).amax(dim=0)
        if augment is not None:  # masks move with their images, as channels of one stack
            present = [mask for mask in masks if mask is not None]
            stacked = augment(torch.cat([x, *(mask.to(x.dtype) for mask in present)], dim=1))
            moved = iter(stacked[:, x.shape[1] :].split(1, dim=1))
            x = stacked[:, : x.shape[1]]
            masks = [None if mask is None else next(moved) > 0.5 for mask in masks]
        return x, y, penalised_region(Batch(x, y, *masks), self.annotation)

    def __repr__(self) -> str:
        return f"Annotation({self.annotation!r})"


def penalty_scale(terms: Iterable[tuple[Tensor, Tensor]], device: torch.device) -> Tensor:
    """The XIL typology framework's automatic scale: the sum of the cross-entropies over the
    sum of the penalties, ``(cross_entropy, penalty)`` per batch of one pass over the training
    data (summed over processes under ``torch.distributed``), so the scaled penalty starts at
    the size of the cross-entropy.

    Raises:
        ValueError: the penalties sum to 0 (no region to penalise) or are not finite.

    Example:
        >>> penalty_scale([(torch.tensor(2.0), torch.tensor(0.5))] * 2, torch.device("cpu"))
        tensor(4.)
    """
    sums = torch.zeros(2, dtype=torch.float64, device=device)
    for cross_entropy, penalty in terms:
        sums += torch.stack([cross_entropy.detach(), penalty.detach()]).double()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(sums)
    ce_sum, penalty_sum = sums.tolist()
    if not (penalty_sum > 0 and torch.isfinite(sums).all()):
        raise ValueError(
            f"cannot scale the penalty to the cross-entropy: over one pass the penalty sums to "
            f"{penalty_sum} (cross-entropy {ce_sum}); are the masks empty? give scale_penalty="
            "False and a penalty_weight"
        )
    return torch.tensor(ce_sum / penalty_sum, device=device)


def scaled_terms(
    step: Callable[[nn.Module, Any], tuple[Tensor, Tensor, Tensor]],
    model: nn.Module,
    loader: Iterable,
) -> Iterator[tuple[Tensor, Tensor]]:
    """``(cross_entropy, penalty)`` of ``step(model, batch) -> (logits, y, penalty)`` for each
    batch of ``loader``, with the model's modes and BatchNorm statistics preserved."""
    device = next(model.parameters()).device
    with preserved_model_state(model):
        for batch in loader:
            batch = tuple(item.to(device) if isinstance(item, Tensor) else item for item in batch)
            logits, y, penalty = step(model, batch)
            yield F.cross_entropy(logits.detach().float(), y), penalty.detach()


class MaskPenalty(Method):
    """Cross-entropy plus a weighted penalty on the explanation inside a region of each image:
    the shared loop of RRR, RRR-G and HINT.

    Subclasses give ``terms(model, x, y, region) -> (logits, penalty)`` from one forward pass
    (the penalty unweighted, a batch mean). The step runs in float32 with autocast off (second
    derivatives in fp16/bf16 underflow) and leaves the model's mode as it is; BatchNorm
    statistics move once, as in a cross-entropy step.

    Args:
        annotation: the region penalised (see :class:`Annotation`), or an ``Annotation``.
        previous_runs: run folders (comma-separated) or models, for ``annotation="previous"``.
        penalty_weight: the penalty's weight; None: the method's ``default_weight``.
        scale_penalty: multiply the weight by the automatic scale (``penalty_scale``, computed
            by ``begin`` over one pass of the training data); None: ``default_scaled``.
        augment: batched geometric augmentation of images and masks, or True for
            ``augment.crop_flip``; None: none.
    """

    #: The official weight (without automatic scaling).
    default_weight: float = 1.0
    #: Whether the official code scales the penalty automatically.
    default_scaled: bool = False
    #: Whether the method takes ``annotation="pixels"`` (regions ``[P, B, 1, H, W]``).
    single_pixels: bool = False

    def __init__(
        self,
        *,
        annotation: str | Annotation = "cue",
        previous_runs: str | Sequence[str | Path | nn.Module] | None = None,
        penalty_weight: float | None = None,
        scale_penalty: bool | None = None,
        augment: bool | BatchAugment | None = None,
    ) -> None:
        from explainaug.augment import crop_flip

        if penalty_weight is not None:
            check_nonnegative(penalty_weight, "penalty_weight")
        if not isinstance(annotation, Annotation):
            annotation = Annotation(annotation, previous_runs)
        if annotation.annotation == "pixels" and not self.single_pixels:
            raise ValueError(
                f"{type(self).__name__} takes annotation cue, object or previous; pixels "
                "(single pixels, no annotation) is CDEP's prior"
            )
        self.annotation = annotation
        self.weight = self.default_weight if penalty_weight is None else float(penalty_weight)
        self.scaled = self.default_scaled if scale_penalty is None else bool(scale_penalty)
        self.augment = LazyAugment(augment, crop_flip)
        self.scale: Tensor | None = None

    @abstractmethod
    def terms(
        self, model: nn.Module, x: Tensor, y: Tensor, region: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(logits, penalty)`` of images ``x`` in [0, 1] with labels ``y`` and the penalised
        region ``[B, 1, H, W]`` (or ``[B, C, H, W]``), from one forward pass."""

    def setup(self, model: nn.Module) -> None:
        self.annotation.setup(model)

    def _terms(self, model: nn.Module, batch: Any) -> tuple[Tensor, Tensor, Tensor]:
        x, y, region = self.annotation.augmented(self.augment.for_size(batch[0].shape[-1]), batch)
        with torch.autocast(x.device.type, enabled=False):
            logits, penalty = self.terms(model, x.float(), y, region.float())
        return logits, y, penalty

    def begin(self, model: nn.Module, loader: Iterable) -> None:
        self.annotation.begin(loader)
        if self.scaled:
            device = next(model.parameters()).device
            self.scale = penalty_scale(scaled_terms(self._terms, model, loader), device)

    def state_dict(self) -> dict[str, Any]:
        state = {"scale": self.scale, "pixel_weights": self.annotation.pixel_weights}
        return {key: value for key, value in state.items() if value is not None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale = state.get("scale")
        self.annotation.pixel_weights = state.get("pixel_weights")

    @property
    def effective_weight(self) -> Tensor | float:
        """The weight the penalty enters the loss with: ``weight``, times ``scale`` if scaled."""
        if not self.scaled:
            return self.weight
        if self.scale is None:
            raise RuntimeError(
                f"{type(self).__name__} scales its penalty from one pass over the training data: "
                "call begin(model, loader) first (Trainer does), or give scale_penalty=False"
            )
        return self.weight * self.scale

    def training_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        logits, y, penalty = self._terms(model, batch)
        cross_entropy = F.cross_entropy(logits, y)
        weighted = self.effective_weight * penalty
        return cross_entropy + weighted, {
            "accuracy": accuracy(logits, y),
            "cross_entropy": cross_entropy.detach(),
            "penalty": weighted.detach(),
        }

    def __repr__(self) -> str:
        scaled = ", scaled" if self.scaled else ""
        return f"{type(self).__name__}({self.annotation!r}, weight={self.weight:g}{scaled})"
