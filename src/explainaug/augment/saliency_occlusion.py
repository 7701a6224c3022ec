"""EDDA's occluded views: fill the salient (or the non-salient) pixels of each image."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from explainaug.augment.base import SaliencyAugmentationBase
from explainaug.augment.fills import FillSpec

REGIONS = ("salient", "nonsalient")


class SaliencyOcclusion(SaliencyAugmentationBase):
    """Occlude the salient or the non-salient region of each image (the EDDA views).

    Per image the map is resized bilinearly to the image and min-max normalised. Ratio mode
    occludes exactly ``round(ratio * H * W)`` pixels: the most salient (``region="salient"``) or
    the least salient (``"nonsalient"``), ties broken at random (a uniform draw among the tied
    pixels, from ``generator``; see :mod:`explainaug.augment.masks`); it is the default, at 0.2. Threshold mode (when ``threshold`` is given; giving ``ratio`` too raises)
    occludes normalised saliency
    ``> threshold`` (salient) or ``<= threshold`` (non-salient), the ExCon rule at 0.5. A constant
    (or all-zero) map normalises to zeros: threshold mode then occludes nothing (salient) or
    everything (non-salient); ratio mode occludes a uniformly random set of its pixels.
    :meth:`mask` returns the keep mask, so the occluded fraction of image ``b`` is
    ``1 - keep[b].mean()``. Images and fills are in [0, 1]; ``p``, ``same_on_batch``, ``keepdim``
    and replay follow Kornia (see :mod:`explainaug.augment.base`).

    Args:
        region: ``"salient"`` or ``"nonsalient"``: which pixels to occlude.
        ratio: fraction of pixels to occlude, in [0, 1] (0.2 when neither ``ratio`` nor
            ``threshold`` is given); ``forward(..., ratio=)`` overrides it per call.
        threshold: occlude by threshold on the normalised map instead (in [0, 1]).
        fill: ``"mean"``, ``"zero"``, ``"blur"``, ``"noise"`` or a number in [0, 1].
        mean: per-channel dataset mean in [0, 1] for ``fill="mean"`` (default: each image's mean).
        soft: sigmoid mask around the threshold (or rank boundary); gradients reach the map.
        temperature: the soft mask's temperature.
        blur_sigma: Gaussian standard deviation in pixels for ``fill="blur"``.
        p: probability that an image is occluded (images not drawn pass through unchanged).
        same_on_batch: one Bernoulli draw (and one noise draw) for the whole batch.
        keepdim: return ``[C, H, W]`` for a ``[C, H, W]`` input.
        check_values: check value ranges (images in [0, 1], finite maps) on every call; each
            check costs a host-device sync, so training steps turn it off.

    Example:
        >>> x = torch.ones(1, 1, 1, 4)
        >>> saliency = torch.tensor([[[[0.0, 0.4, 0.6, 1.0]]]])
        >>> SaliencyOcclusion("salient", ratio=0.25, fill="zero")(x, saliency).flatten().tolist()
        [1.0, 1.0, 1.0, 0.0]
        >>> occlude = SaliencyOcclusion("nonsalient", threshold=0.5, fill="zero")
        >>> occlude(x, saliency).flatten().tolist()
        [0.0, 0.0, 1.0, 1.0]
        >>> occlude.mask(saliency, (1, 4)).tolist()   # the keep mask: 0 = occluded
        [[[[0.0, 0.0, 1.0, 1.0]]]]
    """

    default_ratio = 0.2

    def __init__(
        self,
        region: str = "salient",
        *,
        ratio: float | None = None,
        threshold: float | None = None,
        fill: FillSpec = "mean",
        mean: Sequence[float] | Tensor | None = None,
        soft: bool = False,
        temperature: float = 0.05,
        blur_sigma: float = 2.0,
        p: float = 1.0,
        same_on_batch: bool = False,
        keepdim: bool = False,
        check_values: bool = True,
    ) -> None:
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
        super().__init__(
            threshold=threshold,
            ratio=ratio,
            soft=soft,
            temperature=temperature,
            fill=fill,
            mean=mean,
            blur_sigma=blur_sigma,
            p=p,
            same_on_batch=same_on_batch,
            keepdim=keepdim,
            check_values=check_values,
        )
        self.region = region

    def _keep(
        self, scores: Tensor, ratio: float | Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        return 1 - self._selection(scores, ratio, self.region == "salient", generator)

    def extra_repr(self) -> str:
        return (
            f"region={self.region!r}, {self._mode_repr()}, soft={self.soft}, {super().extra_repr()}"
        )
