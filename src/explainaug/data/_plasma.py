"""Batched diamond-square plasma fractal, the heightmap behind CIFAR-C's fog.

A port of ``plasma_fractal`` from Hendrycks' ``make_cifar_c.py`` that draws every image's map at
once; the algorithm is the same, the random stream is torch's.
"""

from __future__ import annotations

import torch
from torch import Tensor


def plasma_fractal(
    batch: int,
    mapsize: int,
    wibble_decay: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Return ``[batch, mapsize, mapsize]`` heightmaps scaled to [0, 1] per map.

    Args:
        batch: number of maps.
        mapsize: side length, a power of two.
        wibble_decay: how fast the random displacement shrinks per octave (larger: smoother).
        generator: random generator on ``device``.
        device: where to build the maps.

    Example:
        >>> maps = plasma_fractal(2, 8, 3.0, torch.Generator().manual_seed(0))
        >>> maps.shape, float(maps.amin()), float(maps.amax())
        (torch.Size([2, 8, 8]), 0.0, 1.0)
    """
    if mapsize < 2 or mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two >= 2, got {mapsize}")
    heights = torch.zeros(batch, mapsize, mapsize, device=device)
    step, wibble = mapsize, 100.0

    def wibbled_mean(total: Tensor) -> Tensor:
        noise = torch.rand(total.shape, generator=generator, device=device) * 2 - 1
        return total / 4 + wibble * wibble * noise

    while step >= 2:
        half = step // 2
        corners = heights[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, dims=1)
        squares = squares + squares.roll(-1, dims=2)
        heights[:, half::step, half::step] = wibbled_mean(squares)
        centres = heights[:, half::step, half::step]
        corners = heights[:, 0::step, 0::step]
        heights[:, 0::step, half::step] = wibbled_mean(
            centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        )
        heights[:, half::step, 0::step] = wibbled_mean(
            centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        )
        step, wibble = half, wibble / wibble_decay
    heights = heights - heights.amin(dim=(1, 2), keepdim=True)
    return heights / heights.amax(dim=(1, 2), keepdim=True)
