"""RISE (Petsiuk et al., BMVC 2018): randomized input sampling for explanation.

``N`` random binary grids ``s x s`` (each cell on with probability ``p``) are upsampled
bilinearly to ``(s + 1) * cell`` pixels (``cell = ceil(H / s)``) and cropped to ``H x W`` at a
random shift in ``[0, cell)``, the paper's construction. The saliency of a pixel is the expected
class score over masks that keep it: ``sum_n f(x * m_n)[c] m_n / (N p)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._validation import check_count, check_fraction
from explainaug.explain._base import Explainer, class_scores
from explainaug.explain.sise import SCORES


class RISE(Explainer):
    """RISE, batched over images and masks, deterministic for a given seed.

    Masks are generated on the input's device from ``seed`` on every call (the same masks for
    every image and call), in chunks, so they are never all held at input resolution at once.
    Each forward pass scores ``internal_batch_size`` masked images (rounded to whole masks
    across the batch). ``attribute`` and ``__call__`` return the saliency ``[B, 1, H, W]``
    (``__call__`` clamps negative values, which only logit scores can give). The masked images
    are scored without a graph: ``create_graph=True`` raises ``ValueError``.

    Args:
        model: classifier taking images in [0, 1] (masking multiplies them: the baseline is
            black) and returning logits.
        n_masks: number of masks ``N`` (the paper: 4000 to 8000).
        grid_size: cells ``s`` per side of the low-resolution grid (the paper: 7).
        p: probability that a cell is kept (the paper: 0.5).
        seed: seed of the masks.
        internal_batch_size: masked images per forward pass.
        score: ``"probability"`` (softmax, the paper) or ``"logit"``.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> rise = RISE(SmallCNN(num_classes=3, width=4).eval(), n_masks=64, seed=0)
        >>> x = torch.rand(2, 3, 16, 16)
        >>> maps = rise(x, target=1)
        >>> maps.shape, torch.equal(maps, rise(x, target=1))
        (torch.Size([2, 1, 16, 16]), True)
    """

    needs_gradients = False  # forward passes only
    differentiable = False

    def __init__(
        self,
        model: nn.Module,
        *,
        n_masks: int = 4000,
        grid_size: int = 7,
        p: float = 0.5,
        seed: int = 0,
        internal_batch_size: int = 256,
        score: str = "probability",
        check_values: bool = True,
    ) -> None:
        super().__init__(model, check_values=check_values)
        check_count(n_masks, "n_masks")
        check_count(grid_size, "grid_size")
        check_fraction(p, "p")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        check_count(internal_batch_size, "internal_batch_size")
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.n_masks = n_masks
        self.grid_size = grid_size
        self.p = float(p)
        self.seed = seed
        self.internal_batch_size = internal_batch_size
        self.score = score

    def mask_parameters(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The seeded random draws: binary grids ``[N, s, s]`` and fractional shifts ``[N, 2]``.

        A shift ``u`` in [0, 1) becomes ``floor(u * cell)`` pixels for a cell of ``cell`` pixels.
        """
        generator = torch.Generator(device=device).manual_seed(self.seed)
        side = self.grid_size
        grids = torch.rand(self.n_masks, side, side, generator=generator, device=device) < self.p
        shifts = torch.rand(self.n_masks, 2, generator=generator, device=device)
        return grids, shifts

    def masks(
        self, size: tuple[int, int], device: torch.device, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """All ``N`` masks ``[N, 1, H, W]`` in [0, 1] (for inspection; calls make them in chunks).

        Example:
            >>> from explainaug.models import SmallCNN
            >>> rise = RISE(SmallCNN(width=4), n_masks=3, grid_size=2)
            >>> rise.masks((5, 4), torch.device("cpu")).shape
            torch.Size([3, 1, 5, 4])
        """
        grids, shifts = self.mask_parameters(device)
        return self._masks(grids, shifts, size, dtype)

    def _masks(
        self, grids: Tensor, shifts: Tensor, size: tuple[int, int], dtype: torch.dtype
    ) -> Tensor:
        """Upsample binary ``grids [n, s, s]`` to ``(s + 1) * cell`` and crop at the shifts."""
        height, width = size
        side = self.grid_size
        cells = (math.ceil(height / side), math.ceil(width / side))
        upsampled = F.interpolate(
            grids.unsqueeze(1).to(dtype),
            size=((side + 1) * cells[0], (side + 1) * cells[1]),
            mode="bilinear",
            align_corners=False,
        )[:, 0]
        offsets = (shifts * shifts.new_tensor(cells)).floor().long()  # [n, 2]
        rows = offsets[:, 0:1] + torch.arange(height, device=grids.device)  # [n, H]
        cols = offsets[:, 1:2] + torch.arange(width, device=grids.device)  # [n, W]
        index = torch.arange(grids.shape[0], device=grids.device)[:, None, None]
        return upsampled[index, rows[:, :, None], cols[:, None, :]].clamp(0, 1).unsqueeze(1)

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        batch, size = x.shape[0], (x.shape[2], x.shape[3])
        with torch.no_grad():
            logits = self.model(x)
            _, target = self._checked_scores(logits, target)
            grids, shifts = self.mask_parameters(x.device)
            saliency = x.new_zeros(batch, size[0] * size[1])
            per_chunk = max(1, self.internal_batch_size // batch)
            for start in range(0, self.n_masks, per_chunk):
                stop = min(start + per_chunk, self.n_masks)
                masks = self._masks(grids[start:stop], shifts[start:stop], size, x.dtype)
                masked = (masks.unsqueeze(1) * x.unsqueeze(0)).flatten(0, 1)  # [n * B, C, H, W]
                outputs = self.model(masked)
                if self.score == "probability":
                    outputs = outputs.softmax(dim=1)
                scores, _ = class_scores(outputs, target.repeat(stop - start))
                saliency += scores.view(stop - start, batch).T @ masks.flatten(1)
        return (saliency / (self.n_masks * self.p)).view(batch, 1, *size)

    def _to_maps(self, raw: Tensor, x: Tensor) -> Tensor:
        return raw.clamp_min(0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, n_masks={self.n_masks})"
