"""EDDA's occluded views: fill the salient (or the non-salient) pixels of each image."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from explainaug.augment.base import SaliencyAugmentationBase

REGIONS = ("salient", "nonsalient")


class SaliencyOcclusion(SaliencyAugmentationBase):
    """Occlude the salient or the non-salient region of each image (the EDDA views).

    Ratio mode, the default at 0.2, occludes exactly ``round(ratio * H * W)`` pixels: the most
    salient (``region="salient"``) or the least salient (``"nonsalient"``); a constant map gives
    a uniformly random set. Threshold mode occludes normalised saliency ``> threshold``
    (salient) or ``<= threshold`` (non-salient), the ExCon rule at 0.5; a constant map then
    occludes nothing (salient) or everything (non-salient). The occluded fraction of image ``b``
    is ``1 - mask(...)[b].mean()``. Images and fills are in [0, 1].

    Args:
        region: ``"salient"`` or ``"nonsalient"``: which pixels to occlude.
        **options: ``threshold``, ``ratio``, ``soft``, ``temperature`` of
            :class:`SaliencyAugmentationBase` and ``fill``, ``mean``, ``blur_sigma``, ``p``,
            ``same_on_batch``, ``keepdim``, ``check_values`` of :class:`MaskAugmentationBase`.

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

    def __init__(self, region: str = "salient", **options: Any) -> None:
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
        super().__init__(**options)
        self.region = region

    def _keep(
        self, scores: Tensor, ratio: float | Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        return 1 - self._selection(scores, ratio, self.region == "salient", generator)

    def extra_repr(self) -> str:
        return (
            f"region={self.region!r}, {self._mode_repr()}, soft={self.soft}, {super().extra_repr()}"
        )
