"""The non-explanation baseline of EDDA: occlude the same area, at random places."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from explainaug._shared import pixel_counts
from explainaug._validation import check_count, check_fraction
from explainaug.augment.base import MaskAugmentationBase
from explainaug.augment.masks import normalized_saliency, rank_selection

SHAPES = ("regions", "pixels", "square")


class RandomOcclusion(MaskAugmentationBase):
    """Occlude exactly ``round(ratio * H * W)`` random pixels of each image.

    ``shape="regions"`` (the default) occludes contiguous regions: the selection that
    ``SaliencyOcclusion("salient", ratio)`` makes on a smooth random map (``grid x grid`` uniform
    noise upsampled bilinearly, corners aligned, so no ties), so the occlusion has the shape
    statistics of an explanation-driven one at a place unrelated to the image: EDDA's fair
    random control. ``shape="pixels"`` picks independent uniform pixels; ``shape="square"``
    occludes one near-square block at a uniform position, ``w = max(ceil(sqrt(k)), ceil(k / H))``
    columns wide with a partial last row, so exactly ``k`` pixels too (a Cutout with an exact
    area). To match the area of a threshold-mode :class:`SaliencyOcclusion`, pass
    ``ratio=1 - keep_mask.mean((1, 2, 3))`` to :meth:`forward`. Images and fills are in [0, 1];
    ``same_on_batch`` also draws one mask for the batch.

    Args:
        ratio: default fraction of pixels to occlude, in [0, 1].
        shape: ``"regions"``, ``"pixels"`` or ``"square"``.
        grid: side of the noise grid of ``shape="regions"`` (smaller: fewer, larger regions).
            Measured at ratio 0.2 on 32x32: 1.9 regions per image on average with 3 (4: 2.8,
            8: 8.5; scattered pixels: 128), where the top/bottom 20% of the Grad-CAM of a small
            CNN trained on ``shapes`` form 1.5/1.8.
        **options: ``fill``, ``mean``, ``blur_sigma``, ``p``, ``same_on_batch``, ``keepdim``,
            ``check_values`` of :class:`MaskAugmentationBase`.

    Example:
        >>> occlude = RandomOcclusion(ratio=0.25, shape="square", fill="zero")
        >>> out = occlude(torch.ones(2, 3, 8, 8), ratio=torch.tensor([0.25, 0.5]))
        >>> (out[:, 0] == 0).sum((1, 2)).tolist()
        [16, 32]
    """

    def __init__(
        self, ratio: float = 0.2, *, shape: str = "regions", grid: int = 3, **options: Any
    ) -> None:
        super().__init__(**options)
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
        self.ratio = check_fraction(ratio, "ratio", closed=True)
        self.shape = shape
        self.grid = check_count(grid, "grid")

    def mask(
        self,
        batch_size: int,
        size: tuple[int, int],
        ratio: float | Tensor | None = None,
        *,
        device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A random keep mask ``[batch_size, 1, *size]`` (0 = occluded).

        Example:
            >>> RandomOcclusion(ratio=0.5).mask(3, (4, 4)).sum((1, 2, 3)).tolist()
            [8.0, 8.0, 8.0]
        """
        height, width = int(size[0]), int(size[1])
        ratio = self.ratio if ratio is None else self._check_ratio(ratio, batch_size, device)
        counts = pixel_counts(ratio, height * width, batch_size, device)
        draws = 1 if self.same_on_batch else batch_size
        if self.shape == "pixels":
            scores = torch.rand(draws, 1, height, width, generator=generator, device=device)
            occluded = rank_selection(
                scores.expand(batch_size, -1, -1, -1), counts, largest=True, generator=generator
            )
        elif self.shape == "regions":
            noise = torch.rand(draws, 1, self.grid, self.grid, generator=generator, device=device)
            # corner-aligned bilinear upsampling: no constant border patches, hence no ties
            smooth = F.interpolate(noise, (height, width), mode="bilinear", align_corners=True)
            scores = normalized_saliency(smooth, (height, width))  # as SaliencyOcclusion's maps
            occluded = rank_selection(
                scores.expand(batch_size, -1, -1, -1), counts, largest=True, generator=generator
            )
        else:
            corners = torch.rand(
                draws, 2, generator=generator, device=device, dtype=torch.float64
            ).expand(batch_size, -1)
            occluded = _block(counts, corners, height, width)
        return 1 - occluded

    def _keep_mask(
        self,
        batch: Tensor,
        saliency: Tensor | None,
        ratio: float | Tensor | None,
        generator: torch.Generator | None,
        single: bool,
    ) -> Tensor:
        """Random masks: ``saliency`` is ignored, so this drops in for a saliency occlusion."""
        return self.mask(
            batch.shape[0], batch.shape[-2:], ratio, device=batch.device, generator=generator
        ).to(batch.dtype)

    def extra_repr(self) -> str:
        grid = f", grid={self.grid}" if self.shape == "regions" else ""
        return f"ratio={self.ratio}, shape={self.shape!r}{grid}, {super().extra_repr()}"


def _block(counts: Tensor, corners: Tensor, height: int, width: int) -> Tensor:
    """Near-square blocks of exactly ``counts[b]`` pixels at relative positions ``corners[b]``."""
    block_width = (
        torch.maximum(torch.ceil(torch.sqrt(counts.double())), torch.ceil(counts.double() / height))
        .long()
        .clamp(1, width)
    )
    block_rows = (counts + block_width - 1) // block_width
    top = torch.minimum((corners[:, 0] * (height - block_rows + 1)).long(), height - block_rows)
    left = torch.minimum((corners[:, 1] * (width - block_width + 1)).long(), width - block_width)
    device = counts.device
    row = torch.arange(height, device=device).view(1, -1, 1) - top.view(-1, 1, 1)
    column = torch.arange(width, device=device).view(1, 1, -1) - left.view(-1, 1, 1)
    inside = (
        (row >= 0)
        & (column >= 0)
        & (column < block_width.view(-1, 1, 1))
        & (row * block_width.view(-1, 1, 1) + column < counts.view(-1, 1, 1))
    )
    return inside.unsqueeze(1).float()
