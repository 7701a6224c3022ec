"""Pixel selections from saliency maps: thresholds, exact-count ranks and soft (sigmoid) masks.

Every function works on a whole batch at once (no Python loop over images, no host sync).
Scores are ``[B, 1, H, W]``; selections are float ``[B, 1, H, W]`` with 1 for a selected pixel,
0 for the others and values in (0, 1) for soft selections.

Conventions shared by all augmentations of :mod:`explainaug.augment`:

- Maps are resized bilinearly to the image and min-max normalised per image; a constant map
  (all zeros included) normalises to all zeros.
- Exact counts are ``round(ratio * H * W)`` per image, rounded half to even (like Python's
  ``round``), computed in float64.
- Ties in a ranking are broken by raster order: among equal scores the earlier pixel (row-major)
  is selected first. A constant map therefore selects its first ``k`` pixels, row by row.
- Soft selections are ``sigmoid(sign * (s - t) / temperature)`` so gradients reach the map; in
  ratio mode ``t`` is the (detached) midpoint between the k-th and (k+1)-th ranked scores, so a
  soft selection has about, not exactly, ``k`` pixels (pixels tied at the boundary, e.g. all of
  a constant map, get 0.5).
"""

from __future__ import annotations

import torch
from torch import Tensor

from explainaug._shared import minmax_normalize, upsample
from explainaug._shared import pixel_counts as pixel_counts  # part of this module's API


def normalized_saliency(saliency: Tensor, size: tuple[int, int]) -> Tensor:
    """Resize maps ``[B, 1, h, w]`` bilinearly to ``size``, then min-max normalise each to [0, 1].

    Example:
        >>> normalized_saliency(torch.tensor([[[[2.0, 4.0]]]]), (1, 2)).tolist()
        [[[[0.0, 1.0]]]]
    """
    return minmax_normalize(upsample(saliency, size))


def threshold_selection(
    scores: Tensor, threshold: float, *, above: bool, soft: bool = False, temperature: float = 0.05
) -> Tensor:
    """Select pixels with ``scores > threshold`` (``above``) or ``scores <= threshold``.

    Example:
        >>> threshold_selection(torch.tensor([[[[0.2, 0.5, 0.9]]]]), 0.5, above=True).tolist()
        [[[[0.0, 0.0, 1.0]]]]
    """
    if soft:
        sign = 1.0 if above else -1.0
        return torch.sigmoid(sign * (scores - threshold) / temperature)
    selected = scores > threshold if above else scores <= threshold
    return selected.to(scores.dtype)


def rank_selection(
    scores: Tensor, counts: Tensor, *, largest: bool, soft: bool = False, temperature: float = 0.05
) -> Tensor:
    """Select the ``counts[b]`` highest (``largest``) or lowest scores of each image ``b``.

    Hard selections hold exactly ``counts[b]`` ones; ties go to the earlier pixel in raster order.

    Args:
        scores: ``[B, 1, H, W]``.
        counts: ``LongTensor[B]`` with values in ``[0, H * W]``.
        largest: select the highest scores (else the lowest).
        soft: return ``sigmoid`` scores around the rank boundary instead of 0/1.
        temperature: the sigmoid's temperature.

    Example:
        >>> scores = torch.tensor([[[[0.1, 0.7, 0.7, 0.3]]]])
        >>> rank_selection(scores, torch.tensor([2]), largest=True).tolist()
        [[[[0.0, 1.0, 1.0, 0.0]]]]
        >>> rank_selection(scores, torch.tensor([1]), largest=True).tolist()
        [[[[0.0, 1.0, 0.0, 0.0]]]]
    """
    flat = scores.flatten(1)
    values, order = torch.sort(flat, dim=1, descending=largest, stable=True)
    if soft:
        boundary = _rank_boundary(values, counts, largest).detach()
        sign = 1.0 if largest else -1.0
        return torch.sigmoid(sign * (scores - boundary.view(-1, 1, 1, 1)) / temperature)
    positions = torch.arange(flat.shape[1], device=flat.device).expand_as(order)
    ranks = torch.empty_like(order).scatter_(1, order, positions)
    return (ranks < counts.unsqueeze(1)).to(scores.dtype).view_as(scores)


def _rank_boundary(values: Tensor, counts: Tensor, largest: bool) -> Tensor:
    """Midpoint between the k-th and (k+1)-th of the sorted ``values``; +-inf past either end."""
    outside = torch.full_like(values[:, :1], float("inf"))
    first, last = (outside, -outside) if largest else (-outside, outside)
    padded = torch.cat([first, values, last], dim=1)
    counts = counts.unsqueeze(1)
    before = padded.gather(1, counts)
    after = padded.gather(1, counts + 1)
    return ((before + after) / 2).squeeze(1)
