"""ExCon's masked view: keep the salient pixels of each image, fill the rest."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from explainaug.augment.base import SaliencyAugmentationBase
from explainaug.augment.fills import FillSpec


class SaliencyMask(SaliencyAugmentationBase):
    """Keep the salient content of each image and fill the rest (the ExCon view).

    Per image the map is resized bilinearly to the image and min-max normalised. Threshold mode
    keeps pixels with normalised saliency ``> threshold`` (the official ExCon rule at 0.5: pixels
    ``<= 0.5`` are masked); it is the default, at 0.5. With ``ratio`` it keeps exactly
    ``round(ratio * H * W)`` pixels, the most salient, ties broken at random; giving both ``threshold`` and ``ratio`` raises. Conventions for constant maps and ties are in
    :mod:`explainaug.augment.masks`: a constant (or all-zero) map keeps nothing in threshold mode
    and a uniformly random set of its pixels in ratio mode. Images and fills are in [0, 1];
    ``p``, ``same_on_batch``, ``keepdim`` and replay follow Kornia (see
    :mod:`explainaug.augment.base`).

    Args:
        threshold: keep normalised saliency above this value (in [0, 1]; 0.5 when neither
            ``threshold`` nor ``ratio`` is given).
        ratio: keep this fraction of pixels exactly instead (in [0, 1]).
            ``forward(..., ratio=)`` overrides it per call.
        fill: ``"mean"``, ``"zero"``, ``"blur"``, ``"noise"`` or a number in [0, 1].
        mean: per-channel dataset mean in [0, 1] for ``fill="mean"`` (default: each image's mean).
        soft: sigmoid mask ``sigmoid((s - t) / temperature)``; gradients then reach the map.
        temperature: the soft mask's temperature (at 0.05, a pixel 0.15 above ``t`` is 95% kept).
        blur_sigma: Gaussian standard deviation in pixels for ``fill="blur"``.
        p: probability that an image is masked (images not drawn pass through unchanged).
        same_on_batch: one Bernoulli draw (and one noise draw) for the whole batch.
        keepdim: return ``[C, H, W]`` for a ``[C, H, W]`` input.
        check_values: check value ranges (images in [0, 1], finite maps) on every call; each
            check costs a host-device sync, so training steps turn it off.

    Example:
        >>> x = torch.ones(1, 1, 1, 4)
        >>> saliency = torch.tensor([[[[0.0, 0.4, 0.6, 1.0]]]])
        >>> SaliencyMask(fill="zero")(x, saliency).flatten().tolist()
        [0.0, 0.0, 1.0, 1.0]
        >>> SaliencyMask(ratio=0.25, fill=0.5)(x, saliency).flatten().tolist()
        [0.5, 0.5, 0.5, 1.0]
        >>> SaliencyMask().mask(saliency, (1, 4)).tolist()   # the keep mask, reusable
        [[[[0.0, 0.0, 1.0, 1.0]]]]
    """

    default_threshold = 0.5

    def __init__(
        self,
        threshold: float | None = None,
        *,
        ratio: float | None = None,
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

    def _keep(
        self, scores: Tensor, ratio: float | Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        return self._selection(scores, ratio, True, generator)

    def extra_repr(self) -> str:
        return f"{self._mode_repr()}, soft={self.soft}, {super().extra_repr()}"
