"""EDDA's occluded views: fill the salient (or the non-salient) pixels of each image."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from explainaug._validation import check_fraction, check_positive
from explainaug.augment.base import SaliencyAugmentationBase
from explainaug.augment.fills import FillSpec
from explainaug.augment.masks import pixel_counts, rank_selection, threshold_selection

REGIONS = ("salient", "nonsalient")


class SaliencyOcclusion(SaliencyAugmentationBase):
    """Occlude the salient or the non-salient region of each image (the EDDA views).

    Per image the map is resized bilinearly to the image and min-max normalised. Ratio mode
    occludes exactly ``round(ratio * H * W)`` pixels: the most salient (``region="salient"``) or
    the least salient (``"nonsalient"``), ties to the earlier pixel in raster order. Threshold
    mode (when ``threshold`` is given; it overrides ``ratio``) occludes normalised saliency
    ``> threshold`` (salient) or ``<= threshold`` (non-salient), the ExCon rule at 0.5. A constant
    (or all-zero) map normalises to zeros: threshold mode then occludes nothing (salient) or
    everything (non-salient); ratio mode occludes its first pixels in raster order.
    :meth:`mask` returns the keep mask, so the occluded fraction of image ``b`` is
    ``1 - keep[b].mean()``. Images and fills are in [0, 1]; ``p``, ``same_on_batch``, ``keepdim``
    and replay follow Kornia (see :mod:`explainaug.augment.base`).

    Args:
        region: ``"salient"`` or ``"nonsalient"``: which pixels to occlude.
        ratio: fraction of pixels to occlude, in [0, 1].
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

    def __init__(
        self,
        region: str = "salient",
        ratio: float = 0.2,
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
        super().__init__(fill, mean, blur_sigma, p, same_on_batch, keepdim, check_values)
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
        self.region = region
        self.ratio = check_fraction(ratio, "ratio", closed=True)
        self.threshold = (
            None if threshold is None else check_fraction(threshold, "threshold", closed=True)
        )
        self.soft = bool(soft)
        self.temperature = check_positive(temperature, "temperature")

    def _keep(self, scores: Tensor) -> Tensor:
        salient = self.region == "salient"
        if self.threshold is not None:
            occluded = threshold_selection(
                scores, self.threshold, above=salient, soft=self.soft, temperature=self.temperature
            )
        else:
            counts = pixel_counts(self.ratio, scores[0].numel(), scores.shape[0], scores.device)
            occluded = rank_selection(
                scores, counts, largest=salient, soft=self.soft, temperature=self.temperature
            )
        return 1 - occluded

    def extra_repr(self) -> str:
        mode = (
            f"threshold={self.threshold}" if self.threshold is not None else f"ratio={self.ratio}"
        )
        return f"region={self.region!r}, {mode}, soft={self.soft}, {super().extra_repr()}"
