"""ExCon's masked view: keep the salient pixels of each image, fill the rest."""

from __future__ import annotations

import torch
from torch import Tensor

from explainaug.augment.base import SaliencyAugmentationBase


class SaliencyMask(SaliencyAugmentationBase):
    """Keep the salient content of each image and fill the rest (the ExCon view).

    Threshold mode, the default at 0.5, keeps pixels with normalised saliency ``> threshold``
    (the official ExCon rule: pixels ``<= 0.5`` are masked); a constant map keeps nothing. With
    ``ratio`` it keeps exactly ``round(ratio * H * W)`` pixels, the most salient (a constant map:
    a uniformly random set). Images and fills are in [0, 1].

    Args:
        threshold: keep normalised saliency above this value (0.5 when neither ``threshold``
            nor ``ratio`` is given).
        **options: ``ratio``, ``soft``, ``temperature`` of :class:`SaliencyAugmentationBase`
            and ``fill``, ``mean``, ``blur_sigma``, ``p``, ``same_on_batch``, ``keepdim``,
            ``check_values`` of :class:`MaskAugmentationBase`.

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

    def _keep(
        self, scores: Tensor, ratio: float | Tensor | None, generator: torch.Generator | None
    ) -> Tensor:
        return self._selection(scores, ratio, True, generator)

    def extra_repr(self) -> str:
        return f"{self._mode_repr()}, soft={self.soft}, {super().extra_repr()}"
