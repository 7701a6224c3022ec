"""Batched image filters that reproduce the numpy/scipy/PIL/ImageMagick operations used by
Hendrycks' ``make_cifar_c.py``, on any device. Images are float ``[B, C, H, W]`` in [0, 1].

Border modes are named as in ``scipy.ndimage``: ``"nearest"`` repeats the edge pixel,
``"reflect"`` mirrors about the edge (d c b a | a b c d), ``"mirror"`` about the edge pixel's
centre (d c b | a b c d; OpenCV's default ``BORDER_REFLECT_101``).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor


def padded_index(size: int, pad: int, mode: str, device: torch.device) -> Tensor:
    """Indices into an axis of ``size`` that extend it by ``pad`` on both sides.

    Example:
        >>> padded_index(3, 2, "reflect", torch.device("cpu")).tolist()
        [1, 0, 0, 1, 2, 2, 1]
    """
    index = torch.arange(-pad, size + pad, device=device)
    if mode == "nearest" or size == 1:
        return index.clamp(0, size - 1)
    period = 2 * size if mode == "reflect" else 2 * size - 2
    index = index.remainder(period)
    flipped = period - 1 - index if mode == "reflect" else period - index
    return torch.where(index >= size, flipped, index)


def correlate(x: Tensor, kernel: Tensor, mode: str) -> Tensor:
    """Correlate every channel of ``x`` with an odd-sized 2-D ``kernel`` (same output size).

    Example:
        >>> correlate(torch.ones(1, 1, 4, 4), torch.full((3, 3), 1 / 9), "mirror").allclose(
        ...     torch.ones(1, 1, 4, 4))
        True
    """
    b, c, h, w = x.shape
    ry, rx = (kernel.shape[0] - 1) // 2, (kernel.shape[1] - 1) // 2
    x = x.index_select(2, padded_index(h, ry, mode, x.device))
    x = x.index_select(3, padded_index(w, rx, mode, x.device))
    out = F.conv2d(x.reshape(b * c, 1, h + 2 * ry, w + 2 * rx), kernel.to(x)[None, None])
    return out.view(b, c, h, w)


def gaussian_kernel1d(sigma: float, truncate: float) -> Tensor:
    """``scipy.ndimage``'s Gaussian kernel: radius ``int(truncate * sigma + 0.5)``, sum 1.

    Example:
        >>> gaussian_kernel1d(0.05, 4.0).tolist()
        [1.0]
    """
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * t**2 / sigma**2)
    return kernel / kernel.sum()


def gaussian_blur(x: Tensor, sigma: float, truncate: float, mode: str) -> Tensor:
    """``scipy.ndimage.gaussian_filter`` over H and W only (``skimage.filters.gaussian``).

    Example:
        >>> gaussian_blur(torch.ones(1, 3, 8, 8), 1.0, 4.0, "nearest").allclose(
        ...     torch.ones(1, 3, 8, 8))
        True
    """
    kernel = gaussian_kernel1d(sigma, truncate)
    return correlate(correlate(x, kernel.view(1, -1), mode), kernel.view(-1, 1), mode)


@lru_cache(maxsize=64)
def _zoom_matrix(size: int, zoom: float) -> Tensor:
    crop = math.ceil(size / zoom)
    top = (size - crop) // 2
    zoomed = round(crop * zoom)  # scipy.ndimage.zoom's output length
    trim = (zoomed - size) // 2
    coord = torch.arange(trim, trim + size, dtype=torch.float64)
    coord = coord * (crop - 1) / (zoomed - 1) if zoomed > 1 else coord * 0
    low = coord.floor().clamp(max=crop - 1)
    frac = coord - low
    high = (low + 1).clamp(max=crop - 1)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    rows = torch.arange(size)
    matrix.index_put_((rows, top + low.long()), 1 - frac, accumulate=True)
    matrix.index_put_((rows, top + high.long()), frac, accumulate=True)
    return matrix


def clipped_zoom(x: Tensor, zoom: float) -> Tensor:
    """Zoom into the centre by ``zoom`` >= 1 and keep the input size (``make_cifar_c.py``).

    Crops the central ``ceil(size / zoom)`` pixels and resizes them with
    ``scipy.ndimage.zoom(order=1)``'s linear interpolation (corner-aligned grid).

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> clipped_zoom(x, 1.0).allclose(x)
        True
    """
    rows = _zoom_matrix(x.shape[2], zoom).to(x)
    cols = _zoom_matrix(x.shape[3], zoom).to(x)
    return rows @ x @ cols.T


@lru_cache(maxsize=64)
def _box_weights(in_size: int, out_size: int) -> Tensor:
    # Pillow's precompute_coeffs for the BOX filter (support 0.5, weights 0 or 1, normalised).
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for out in range(out_size):
        centre = (out + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_size)
        for source in range(first, last):
            t = (source - centre + 0.5) / filter_scale
            weights[out, source] = 1.0 if -0.5 < t <= 0.5 else 0.0
    return weights / weights.sum(dim=1, keepdim=True)


def box_resize(x: Tensor, height: int, width: int) -> Tensor:
    """``PIL.Image.resize(..., Image.BOX)`` of 8-bit images: horizontal pass, then vertical,
    each rounded to 8-bit levels as Pillow does.

    Example:
        >>> box_resize(torch.full((1, 3, 4, 4), 0.5), 2, 2).shape
        torch.Size([1, 3, 2, 2])
    """
    horizontal = _box_weights(x.shape[3], width).to(x)
    vertical = _box_weights(x.shape[2], height).to(x)
    x = torch.floor(x @ horizontal.T * 255 + 0.5) / 255
    return torch.floor(vertical @ x * 255 + 0.5) / 255


def motion_blur(x: Tensor, radius: float, sigma: float, angle_degrees: Tensor) -> Tensor:
    """ImageMagick's ``MotionBlurImage`` with one angle per image, rounded to 8-bit levels.

    The kernel is one-sided: ``2 * ceil(radius) + 1`` taps with Gaussian weights
    ``exp(-i^2 / (2 sigma^2))`` at integer offsets ``i * (cos a, sin a)`` rounded as ImageMagick
    does; pixels beyond the border repeat the edge.

    Example:
        >>> x = torch.rand(2, 3, 8, 8)
        >>> motion_blur(x, 2, 1e-3, torch.zeros(2)).allclose((x * 255).round() / 255)
        True
    """
    b, c, h, w = x.shape
    taps = torch.arange(2 * math.ceil(radius) + 1, device=x.device, dtype=x.dtype)
    weights = torch.exp(-(taps**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    angle = torch.deg2rad(angle_degrees.to(x)).view(b, 1)
    offset_x = torch.ceil(taps * torch.cos(angle) - 0.5).long()  # [B, taps]
    offset_y = torch.ceil(taps * torch.sin(angle) - 0.5).long()
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    flat = x.reshape(b, c, h * w)
    out = torch.zeros_like(flat)
    for tap in range(taps.shape[0]):
        source_rows = (rows + offset_y[:, tap].view(b, 1, 1)).clamp(0, h - 1)
        source_cols = (cols + offset_x[:, tap].view(b, 1, 1)).clamp(0, w - 1)
        index = (source_rows * w + source_cols).view(b, 1, h * w).expand(-1, c, -1)
        out += weights[tap] * flat.gather(2, index)
    return torch.round(out.view(b, c, h, w).clamp(0, 1) * 255) / 255
