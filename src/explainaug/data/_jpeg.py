"""A batched baseline-JPEG round trip (encode + decode) modelled on libjpeg's defaults.

Steps, as Pillow's ``save(format="JPEG", quality=q)`` runs them: RGB -> YCbCr (JFIF), 4:2:0 chroma
subsampling by 2x2 averaging, 8x8 DCT, quantisation with the IJG tables scaled by ``quality``
(hard rounding), then dequantisation, inverse DCT, "fancy" (triangular = bilinear) chroma
upsampling and YCbCr -> RGB, every stored sample rounded to 8 bits. Edges are replicated up to a
multiple of 16 pixels like libjpeg's MCU padding. It is an approximation of libjpeg (integer DCTs
and fixed-point colour conversion round differently): a few 8-bit levels on average.

``kornia.enhance.jpeg_codec_differentiable`` is not used because it is differentiable by design:
its polynomial rounding moves each quantised coefficient by up to 1/8 of a step and its chroma
resampling is anti-aliased bilinear, both further from libjpeg than hard rounding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8,) * 4,
)


def quantization_table(base: tuple[tuple[int, ...], ...], quality: int) -> Tensor:
    """IJG's ``jpeg_quality_scaling`` of a base table, baseline-limited to [1, 255].

    Example:
        >>> quantization_table(_LUMA_TABLE, 80)[0, :4].tolist()
        [6.0, 4.0, 4.0, 6.0]
    """
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    table = (torch.tensor(base, dtype=torch.float32) * scale + 50).div(100).floor()
    return table.clamp(1, 255)


def _dct_matrix(device: torch.device) -> Tensor:
    u = torch.arange(8, dtype=torch.float32, device=device).view(8, 1)
    x = torch.arange(8, dtype=torch.float32, device=device).view(1, 8)
    matrix = torch.cos((2 * x + 1) * u * math.pi / 16) * math.sqrt(2 / 8)
    matrix[0] = math.sqrt(1 / 8)
    return matrix


def _quantize_blocks(plane: Tensor, table: Tensor, dct: Tensor) -> Tensor:
    b, h, w = plane.shape
    blocks = (plane - 128).view(b, h // 8, 8, w // 8, 8).transpose(2, 3)
    coefficients = dct @ blocks @ dct.T
    coefficients = torch.round(coefficients / table) * table
    blocks = dct.T @ coefficients @ dct + 128
    return blocks.transpose(2, 3).reshape(b, h, w).round().clamp(0, 255)


def jpeg_round_trip(x: Tensor, quality: int) -> Tensor:
    """Compress and decompress RGB images ``[B, 3, H, W]`` in [0, 1] at JPEG ``quality``.

    Returns images in [0, 1] on 8-bit levels.

    Example:
        >>> x = torch.full((1, 3, 16, 16), 0.5)
        >>> jpeg_round_trip(x, 80).sub(x).abs().max() <= 1 / 255
        tensor(True)
    """
    b, _, h, w = x.shape
    pixels = torch.floor(x * 255)
    pad_h, pad_w = -h % 16, -w % 16
    pixels = F.pad(pixels, (0, pad_w, 0, pad_h), mode="replicate")
    r, g, bl = pixels.unbind(1)
    luma = (0.299 * r + 0.587 * g + 0.114 * bl).round()
    cb = (-0.168736 * r - 0.331264 * g + 0.5 * bl + 128).round()
    cr = (0.5 * r - 0.418688 * g - 0.081312 * bl + 128).round()
    chroma = F.avg_pool2d(torch.stack((cb, cr), 1), 2).round()
    dct = _dct_matrix(x.device)
    luma = _quantize_blocks(luma, quantization_table(_LUMA_TABLE, quality).to(x.device), dct)
    chroma_table = quantization_table(_CHROMA_TABLE, quality).to(x.device)
    chroma = _quantize_blocks(chroma.flatten(0, 1), chroma_table, dct).view(b, 2, *chroma.shape[2:])
    cb, cr = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False).unbind(1)
    rgb = torch.stack(
        (
            luma + 1.402 * (cr - 128),
            luma - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
            luma + 1.772 * (cb - 128),
        ),
        1,
    )
    return rgb.round().clamp(0, 255)[:, :, :h, :w] / 255
