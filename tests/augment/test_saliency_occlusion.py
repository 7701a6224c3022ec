"""SaliencyOcclusion: exact salient / non-salient areas, threshold semantics, edge cases."""

import numpy as np
import pytest
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


def test_nonsalient_ratio_occludes_the_exact_bottom_pixels_with_raster_ties():
    saliency = torch.tensor([[[[0.0, 0.0, 0.0, 1.0], [0.5, 0.0, 1.0, 1.0]]]])
    keep = SaliencyOcclusion("nonsalient", ratio=0.25).mask(saliency, (2, 4))
    assert keep.flatten().tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]


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
    assert keep[:, 0, :2].eq(0).all() and keep[:, 0, 2:].eq(1).all()


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
