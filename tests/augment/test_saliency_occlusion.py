"""SaliencyOcclusion: exact salient / non-salient areas, threshold semantics, edge cases."""

import numpy as np
import pytest
import scipy.stats
import torch

from explainaug.augment import SaliencyMask, SaliencyOcclusion


def test_salient_ratio_occludes_the_exact_top_pixels():
    torch.manual_seed(0)
    saliency = torch.rand(3, 1, 10, 10)
    keep = SaliencyOcclusion("salient", ratio=0.2).mask(saliency, (10, 10))
    assert keep.sum((1, 2, 3)).tolist() == [80.0] * 3
    for image, kept in zip(saliency.flatten(1), keep.flatten(1), strict=False):
        top = torch.from_numpy(np.argsort(-image.numpy(), kind="stable")[:20])
        assert kept[top].eq(0).all()


def test_nonsalient_ratio_occludes_two_of_the_tied_least_salient_pixels():
    saliency = torch.tensor([[[[0.0, 0.0, 0.0, 1.0], [0.5, 0.0, 1.0, 1.0]]]])
    keep = SaliencyOcclusion("nonsalient", ratio=0.25).mask(saliency, (2, 4)).flatten()
    zeros = saliency.flatten() == 0
    assert keep.sum() == 6 and keep[~zeros].eq(1).all()  # 2 occluded, all among the four zeros


def _blob_maps(batch: int, size: int = 32) -> torch.Tensor:
    """Maps that are 0 except a 4x4 blob in the middle (a ReLU'd Grad-CAM's typical zero area)."""
    maps = torch.zeros(batch, 1, size, size)
    maps[:, :, 14:18, 14:18] = 1.0
    return maps


def test_tied_pixels_are_occluded_like_a_uniform_draw_over_rows():
    """The 20% least salient pixels of a blob map are a uniform draw of the tied zeros: their
    row counts pass a chi-square test against the hypergeometric expectation (raster-order tie
    breaking puts them all in the top 7 rows and fails by orders of magnitude)."""
    batch, size = 200, 32
    maps = _blob_maps(batch, size)
    occlude = SaliencyOcclusion("nonsalient", ratio=0.2, fill="zero")
    out = occlude(
        torch.ones(batch, 1, size, size), maps, generator=torch.Generator().manual_seed(0)
    )
    occluded = out[:, 0] == 0
    k = round(0.2 * size * size)
    assert occluded.sum((1, 2)).tolist() == [k] * batch  # exact count per image
    tied = maps[0, 0] == 0
    assert not (occluded & ~tied).any()  # only tied (zero) pixels are occluded
    observed = occluded.sum(dim=(0, 2)).double()
    expected = batch * k * tied.sum(dim=1).double() / tied.sum()
    chi_square = float(((observed - expected) ** 2 / expected).sum())
    assert chi_square < scipy.stats.chi2.ppf(1 - 1e-4, df=size - 1), chi_square
    top_rows = float(observed[:7].sum() / observed.sum())
    assert top_rows == pytest.approx(7 * size / tied.sum().item(), abs=0.02)  # not 41%


def test_tie_breaking_is_deterministic_given_the_generator():
    maps, x = _blob_maps(4, 16), torch.rand(4, 3, 16, 16)
    occlude = SaliencyOcclusion("nonsalient", ratio=0.3)
    first, again, other = (
        occlude(x, maps, generator=torch.Generator().manual_seed(seed)) for seed in (1, 1, 2)
    )
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_threshold_modes_split_the_image_like_excon():
    torch.manual_seed(1)
    saliency = torch.randn(4, 1, 8, 8)
    salient = SaliencyOcclusion("salient", threshold=0.5).mask(saliency, (8, 8))
    nonsalient = SaliencyOcclusion("nonsalient", threshold=0.5).mask(saliency, (8, 8))
    excon_keep = SaliencyMask(threshold=0.5).mask(saliency, (8, 8))
    assert torch.equal(nonsalient, excon_keep)  # non-salient occlusion == ExCon's masked view
    assert torch.equal(salient + nonsalient, torch.ones_like(salient))


def test_occluded_pixels_take_the_fill_and_the_rest_is_untouched():
    torch.manual_seed(2)
    x, saliency = torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8)
    aug = SaliencyOcclusion("salient", ratio=0.5, fill="zero")
    out = aug(x, saliency)
    occluded = aug._params["keep"].eq(0).expand_as(x)
    assert out[occluded].eq(0).all() and torch.equal(out[~occluded], x[~occluded])


def test_constant_maps():
    saliency = torch.zeros(2, 1, 4, 4)
    assert SaliencyOcclusion("salient", threshold=0.5).mask(saliency, (4, 4)).eq(1).all()
    assert SaliencyOcclusion("nonsalient", threshold=0.5).mask(saliency, (4, 4)).eq(0).all()
    keep = SaliencyOcclusion("salient", ratio=0.5).mask(saliency + 7, (4, 4))
    assert keep.sum((1, 2, 3)).tolist() == [8.0, 8.0]  # half of the (all tied) pixels


def test_errors():
    with pytest.raises(ValueError, match="region"):
        SaliencyOcclusion("background")
    with pytest.raises(ValueError, match="ratio"):
        SaliencyOcclusion(ratio=1.2)
    with pytest.raises(ValueError, match="NaN"):
        SaliencyOcclusion()(torch.rand(1, 3, 4, 4), torch.full((1, 4, 4), float("nan")))


def test_soft_salient_occlusion_is_differentiable():
    saliency = torch.rand(2, 1, 4, 4, requires_grad=True)
    out = SaliencyOcclusion(soft=True, fill="zero")(torch.ones(2, 3, 8, 8), saliency)
    out.mean().backward()
    assert saliency.grad.abs().sum() > 0
