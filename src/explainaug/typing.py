"""The package's type aliases and Protocols: what an explainer, a view pipeline and a mask are.

Anything with the right shape fits, not only this package's classes: a Captum wrapper with a
``.model`` and ``__call__(x, target)`` is an ``ExplainerLike``; a Kornia pipeline is a
``ViewTransform``. ``isinstance`` works with each Protocol (it checks the methods and
attributes are there, not their signatures).

Example:
    >>> from explainaug.explain import Saliency
    >>> from explainaug.augment import SaliencyMask, supcon_views
    >>> from explainaug.models import SmallCNN
    >>> isinstance(Saliency(SmallCNN(num_classes=3, width=4)), ExplainerLike)
    True
    >>> isinstance(SaliencyMask(), MaskTransform), isinstance(supcon_views(8), ViewTransform)
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol, runtime_checkable

from torch import Tensor, nn

Target = int | Tensor | None
"""Which class to explain: ``LongTensor[B]``, one int for the batch, or None (the prediction)."""


class Batch(NamedTuple):
    """A loader's batch, unpacked (``explainaug._shared.unpack_batch``): loaders yield
    ``(x, y)``, ``(x, y, masks)`` or ``(x, y, masks, cue_masks)``.

    Attributes:
        images: float ``[B, C, H, W]`` in [0, 1] (models normalise inside).
        labels: integer class labels ``[B]``.
        masks: the objects' masks ``[B, 1, H, W]`` (bool), where the data have them.
        cue_masks: the shortcut cue's masks ``[B, 1, H, W]`` (bool), where the data have them.
    """

    images: Tensor
    labels: Tensor
    masks: Tensor | None = None
    cue_masks: Tensor | None = None


Metrics = dict[str, Tensor]
"""Scalar tensors a training step reports (no host syncs)."""

BatchAugment = Callable[[Tensor], Tensor]
"""A batched augmentation of images ``[B, C, H, W]`` in [0, 1] (crop, flip)."""


@runtime_checkable
class ExplainerLike(Protocol):
    """An explainer of one model: ``explainer(x, target)`` gives maps ``[B, 1, h, w]`` >= 0."""

    model: nn.Module

    def __call__(self, x: Tensor, target: Target = None) -> Tensor: ...


ExplainerFactory = Callable[[nn.Module], ExplainerLike]
"""Builds the explainer of a model (e.g. an explainer class such as ``GradCAM``)."""


@runtime_checkable
class ViewTransform(Protocol):
    """Random views of a batch: images ``[B, C, H, W]`` -> ``[B, V, C, H, W]`` in [0, 1]."""

    def __call__(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class MaskTransform(Protocol):
    """A saliency-driven augmentation: ``mask(x, saliency)`` -> images shaped like ``x``, and
    ``mask.mask(saliency, size)`` -> the keep mask ``[B, 1, *size]`` (1 = kept)."""

    def __call__(self, x: Tensor, saliency: Tensor | None = None) -> Tensor: ...

    def mask(self, saliency: Tensor, size: tuple[int, int]) -> Tensor: ...


@runtime_checkable
class RatioOcclusion(Protocol):
    """An occlusion of a given area: ``occlude(x, ratio=float | Tensor[B])`` (RandomOcclusion)."""

    def __call__(
        self, x: Tensor, saliency: Tensor | None = None, *, ratio: float | Tensor | None = None
    ) -> Tensor: ...


__all__ = [
    "Batch",
    "BatchAugment",
    "ExplainerFactory",
    "ExplainerLike",
    "MaskTransform",
    "Metrics",
    "RatioOcclusion",
    "Target",
    "ViewTransform",
]
