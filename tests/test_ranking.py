"""The shared tie-breaking rank: exact permutations, score order kept, uniform among ties, and
the same selection in training (augment) and evaluation (evaluate) for the same seed."""

from __future__ import annotations

import itertools

import pytest
import torch

from explainaug._ranking import tie_broken_ranks
from explainaug.augment import SaliencyOcclusion
from explainaug.evaluate._maps import descending_rank


def test_ranks_are_permutations_that_keep_the_score_order() -> None:
    torch.manual_seed(0)
    scores = torch.randint(0, 5, (64, 30)).float()
    for descending in (True, False):
        ranks = tie_broken_ranks(scores, descending=descending)
        assert torch.equal(ranks.sort(dim=1).values, torch.arange(30).expand(64, 30))
        ordered = scores.gather(1, ranks.argsort(dim=1))  # scores listed by rank
        steps = ordered.diff(dim=1)
        assert (steps <= 0).all() if descending else (steps >= 0).all()


def test_every_order_of_tied_scores_is_equally_likely() -> None:
    """Three tied scores after a distinct one: the 6 orders of the tie each appear about 1/6 of
    the time (a raster tie-break always gives the same one)."""
    scores = torch.tensor([[9.0, 1.0, 1.0, 1.0]]).expand(6000, 4)
    ranks = tie_broken_ranks(scores, descending=True, generator=torch.Generator().manual_seed(0))
    assert ranks[:, 0].eq(0).all()
    orders = [tuple(row) for row in ranks[:, 1:].tolist()]
    for permutation in itertools.permutations((1, 2, 3)):
        # binomial(6000, 1/6): sd 0.0048, so 0.025 is more than 5 sd
        assert orders.count(permutation) / 6000 == pytest.approx(1 / 6, abs=0.025)


def test_training_and_evaluation_select_the_same_pixels_for_the_same_seed() -> None:
    maps = torch.zeros(8, 1, 16, 16)
    maps[..., 6:9, 6:9] = torch.rand(8, 1, 3, 3)
    k = round(0.2 * 256)
    occluded = 1 - SaliencyOcclusion("salient", ratio=0.2).mask(
        maps, (16, 16), generator=torch.Generator().manual_seed(3)
    )
    evaluated = descending_rank(maps.flatten(1), torch.Generator().manual_seed(3)) < k
    assert torch.equal(occluded.flatten(1).bool(), evaluated)


def test_bad_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"\[B, N\]"):
        tie_broken_ranks(torch.zeros(2, 3, 4), descending=True)
