"""What replaces the masked pixels of an image in [0, 1].

Fills (``fill=``):

- ``"mean"``: the per-channel dataset mean colour ``mean=`` (in [0, 1] pixel space; this is the
  official ExCon/EDDA fill, which sets the normalised image to 0). Without ``mean=``, the mean
  colour of each image itself (per channel).
- ``"zero"``: black.
- ``"blur"``: the image blurred by a Gaussian of standard deviation ``blur_sigma`` pixels
  (``kornia.filters.gaussian_blur2d``, replicated borders, kernel ``2 * ceil(3 sigma) + 1``).
- ``"noise"``: independent uniform noise in [0, 1] per pixel and channel.
- a number in [0, 1]: that grey level in every channel.

Every fill stays in [0, 1] for images in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import kornia
import torch
from torch import Tensor, nn

from explainaug._validation import check_positive

FillSpec = str | float
FILL_NAMES = ("mean", "zero", "blur", "noise")


class Fill(nn.Module):
    """Fill values for a batch ``[B, C, H, W]`` in [0, 1]; see the module docstring for the kinds.

    Args:
        fill: ``"mean"``, ``"zero"``, ``"blur"``, ``"noise"`` or a number in [0, 1].
        mean: per-channel dataset mean in [0, 1], used by ``fill="mean"`` only.
        blur_sigma: standard deviation in pixels of ``fill="blur"``.

    Example:
        >>> fill = Fill("mean", mean=(0.5, 0.25, 1.0))
        >>> fill(torch.zeros(1, 3, 2, 2)).flatten().tolist()
        [0.5, 0.25, 1.0]
    """

    def __init__(
        self,
        fill: FillSpec = "mean",
        mean: Sequence[float] | Tensor | None = None,
        blur_sigma: float = 2.0,
    ) -> None:
        super().__init__()
        if isinstance(fill, bool) or not isinstance(fill, (str, int, float)):
            raise TypeError(f"fill must be one of {FILL_NAMES} or a number, got {fill!r}")
        if isinstance(fill, str) and fill not in FILL_NAMES:
            raise ValueError(f"fill must be one of {FILL_NAMES} or a number, got {fill!r}")
        if not isinstance(fill, str) and not 0 <= fill <= 1:
            raise ValueError(f"a constant fill must lie in [0, 1], got {fill}")
        if mean is not None and fill != "mean":
            raise ValueError(f"mean= is used only by fill='mean', got fill={fill!r}")
        self.kind = fill
        self.blur_sigma = check_positive(blur_sigma, "blur_sigma")
        self.mean: Tensor | None
        self.register_buffer("mean", None if mean is None else _check_mean(mean), persistent=False)

    @property
    def random(self) -> bool:
        """Whether the fill draws random values (they are then kept for replay)."""
        return self.kind == "noise"

    def draw(
        self, x: Tensor, generator: torch.Generator | None = None, same_on_batch: bool = False
    ) -> Tensor | None:
        """Draw the random part of the fill for ``x`` (``None`` for deterministic fills).

        Example:
            >>> Fill("noise").draw(torch.zeros(2, 3, 4, 4)).shape
            torch.Size([2, 3, 4, 4])
        """
        if not self.random:
            return None
        shape = (1, *x.shape[1:]) if same_on_batch else x.shape
        noise = torch.rand(shape, generator=generator, device=x.device, dtype=x.dtype)
        return noise.expand_as(x)

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        """Fill values broadcastable to ``x``; ``noise`` comes from :meth:`draw` for ``"noise"``."""
        if self.kind == "mean":
            if self.mean is None:
                return x.mean(dim=(2, 3), keepdim=True)
            if self.mean.numel() != x.shape[1]:
                raise ValueError(
                    f"mean has {self.mean.numel()} channels but the images have {x.shape[1]}"
                )
            return self.mean.to(x).view(1, -1, 1, 1)
        if self.kind == "zero":
            return x.new_zeros(())
        if self.kind == "blur":
            kernel = 2 * math.ceil(3 * self.blur_sigma) + 1
            sigma = (self.blur_sigma, self.blur_sigma)
            return kornia.filters.gaussian_blur2d(x, kernel, sigma, border_type="replicate")
        if self.kind == "noise":
            if noise is None or noise.shape != x.shape:
                shape = None if noise is None else tuple(noise.shape)
                raise ValueError(f"fill='noise' needs noise of shape {tuple(x.shape)}, got {shape}")
            return noise
        return x.new_full((), float(self.kind))

    def extra_repr(self) -> str:
        return f"fill={self.kind!r}"


def _check_mean(mean: Sequence[float] | Tensor) -> Tensor:
    values = torch.as_tensor(mean, dtype=torch.float32).flatten()
    if values.numel() == 0 or not bool(((values >= 0) & (values <= 1)).all()):
        raise ValueError(
            f"mean must be per-channel values in [0, 1] (pixel space), got {values.tolist()}"
        )
    return values
