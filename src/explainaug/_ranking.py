"""Pixel ranks with ties broken at random: the one rule shared by training and evaluation.

The augmentations (:mod:`explainaug.augment`) and the explanation metrics
(:mod:`explainaug.evaluate`) both select "the k most (or least) salient pixels". A ReLU'd
Grad-CAM is exactly 0 over large areas, so which of the tied pixels are taken decides where
the selection lands; breaking ties by position (raster order) turns "the least salient 20%"
into a band of top or bottom rows, a positional artefact unrelated to the explanation.

Here each row is sorted by score first and, among equal scores, by a random key drawn from
``generator`` (a uniformly random permutation of the row): every order of a group of tied
pixels is equally likely, scores that differ keep their order, counts stay exact (ranks are a
permutation), and the result is deterministic given the generator's state. Two sorts and one
draw per call, all on the scores' device (no host sync).
"""

from __future__ import annotations

import torch
from torch import Tensor


def tie_broken_ranks(
    scores: Tensor, *, descending: bool, generator: torch.Generator | None = None
) -> Tensor:
    """Rank of each entry of each row of ``scores [B, N]`` (0 = first), ties in random order.

    Args:
        scores: ``[B, N]`` real values (e.g. flattened saliency maps).
        descending: rank the largest score first (else the smallest).
        generator: random generator of the tie-breaking keys (on any device; ``None``: torch's
            global generator).

    Returns:
        ``LongTensor[B, N]``: each row a permutation of ``0 .. N-1``.

    Example:
        >>> tie_broken_ranks(torch.tensor([[0.1, 0.9, 0.5]]), descending=True).tolist()
        [[2, 0, 1]]
        >>> ranks = tie_broken_ranks(torch.zeros(1, 4), descending=True,
        ...                          generator=torch.Generator().manual_seed(0))
        >>> sorted(ranks[0].tolist())
        [0, 1, 2, 3]
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape [B, N], got {tuple(scores.shape)}")
    device = generator.device if generator is not None else scores.device
    keys = torch.randint(2**62, scores.shape, generator=generator, device=device)
    shuffle = keys.to(scores.device).argsort(dim=1)
    by_score = scores.gather(1, shuffle).argsort(dim=1, descending=descending, stable=True)
    order = shuffle.gather(1, by_score)
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    return torch.empty_like(order).scatter_(1, order, positions)
