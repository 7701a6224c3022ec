"""Pixel selections from saliency maps: thresholds, exact-count ranks and soft (sigmoid) masks.

Every function works on a whole batch at once (no Python loop over images, no host sync).
Scores are ``[B, 1, H, W]``; selections are float ``[B, 1, H, W]`` with 1 for a selected pixel,
0 for the others and values in (0, 1) for soft selections.

Conventions shared by all augmentations of :mod:`explainaug.augment`:

- Maps are resized bilinearly to the image and min-max normalised per image; a constant map
  (all zeros included) normalises to all zeros.
- Exact counts are ``round(ratio * H * W)`` per image, rounded half to even (like Python's
  ``round``), computed in float64.
- Ties in a ranking are broken at random (:mod:`explainaug._ranking`, the rule the evaluation
  metrics share): among equal scores every pixel is equally likely to be selected, so a
  constant map, or the zero area of a ReLU'd Grad-CAM, gives a uniform random draw of the
  tied pixels, never a band of rows. The draw comes from the ``generator`` passed down (torch's
  global generator by default).
- Soft selections are ``sigmoid(sign * (s - t) / temperature)`` so gradients reach the map; in
  ratio mode ``t`` is the (detached) midpoint between the k-th and (k+1)-th ranked scores, so a
  soft selection has about, not exactly, ``k`` pixels (pixels tied at the boundary, e.g. all of
  a constant map, get 0.5).
"""

from __future__ import annotations

import torch
from torch import Tensor

from explainaug._ranking import tie_broken_ranks
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
    scores: Tensor,
    counts: Tensor,
    *,
    largest: bool,
    soft: bool = False,
    temperature: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Select the ``counts[b]`` highest (``largest``) or lowest scores of each image ``b``.

    ``scores``: ``[B, 1, H, W]``; ``counts``: ``LongTensor[B]`` in ``[0, H * W]``. Hard
    selections hold exactly ``counts[b]`` ones, ties broken at random (see
    :func:`explainaug._ranking.tie_broken_ranks`) from ``generator``; ``soft`` returns sigmoid
    scores around the rank boundary instead.

    Example:
        >>> scores = torch.tensor([[[[0.1, 0.7, 0.7, 0.3]]]])
        >>> rank_selection(scores, torch.tensor([2]), largest=True).tolist()
        [[[[0.0, 1.0, 1.0, 0.0]]]]
        >>> rank_selection(scores, torch.tensor([1]), largest=True).sum().item()  # one of the 0.7s
        1.0
    """
    if soft:
        values = scores.flatten(1).sort(dim=1, descending=largest).values
        boundary = _rank_boundary(values, counts, largest).detach()
        sign = 1.0 if largest else -1.0
        return torch.sigmoid(sign * (scores - boundary.view(-1, 1, 1, 1)) / temperature)
    ranks = tie_broken_ranks(scores.flatten(1), descending=largest, generator=generator)
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
