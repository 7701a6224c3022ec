"""RandomOcclusion: exact areas for regions, pixels and squares, per-image ratios, area
matching, and contiguous regions by default (EDDA's fair control)."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from explainaug.augment import RandomOcclusion, SaliencyOcclusion


@pytest.mark.parametrize("shape", ["regions", "pixels", "square"])
@pytest.mark.parametrize("size", [(8, 8), (5, 13), (16, 3)])
def test_exact_area_for_every_image(shape, size):
    ratios = torch.tensor([0.0, 0.1, 0.33, 0.5, 0.97, 1.0])
    keep = RandomOcclusion(shape=shape).mask(6, size, ratios)
    expected = [float(round(r * size[0] * size[1])) for r in ratios.double().tolist()]
    assert (1 - keep).sum((1, 2, 3)).tolist() == expected


def test_square_is_one_near_square_block():
    torch.manual_seed(0)
    keep = RandomOcclusion(ratio=0.25, shape="square").mask(20, (16, 16))  # k = 64: 8 x 8
    for occluded in (1 - keep)[:, 0].bool():
        rows, columns = occluded.nonzero(as_tuple=True)
        assert rows.max() - rows.min() == 7 and columns.max() - columns.min() == 7


def test_square_positions_vary_and_cover_the_image():
    keep = RandomOcclusion(ratio=0.0625, shape="square").mask(400, (8, 8))  # 2 x 2 blocks
    coverage = (1 - keep).sum(0)
    assert coverage.min() > 0  # every pixel is occluded by some block


def test_pixels_are_uniform():
    occluded = 1 - RandomOcclusion(ratio=0.25, shape="pixels").mask(2000, (4, 4))
    frequency = occluded.mean(0)
    assert (frequency - 0.25).abs().max() < 0.05


def test_regions_are_the_saliency_occlusion_of_a_smooth_random_map():
    keep = RandomOcclusion(ratio=0.2).mask(6, (32, 32), generator=torch.Generator().manual_seed(5))
    generator = torch.Generator().manual_seed(5)  # the noise, then the tie-breaking keys
    noise = torch.rand(6, 1, 3, 3, generator=generator)
    smooth = torch.nn.functional.interpolate(noise, (32, 32), mode="bilinear", align_corners=True)
    occlusion = SaliencyOcclusion("salient", ratio=0.2)
    assert torch.equal(keep, occlusion.mask(smooth, (32, 32), generator=generator))


def regions_per_image(keep: torch.Tensor) -> list[int]:
    """Connected occluded regions (4-neighbourhood) of each keep mask."""
    return [ndimage.label(mask)[1] for mask in (1 - keep[:, 0]).numpy().astype(np.int8)]


def test_default_occlusion_is_a_few_contiguous_regions_not_scattered_pixels():
    """EDDA occludes the top/bottom 20% of an upsampled Grad-CAM: a few blobs. The default
    random control does the same; scattered pixels give ~100 regions on 32x32."""
    torch.manual_seed(0)
    default = regions_per_image(RandomOcclusion(ratio=0.2).mask(200, (32, 32)))
    pixels = regions_per_image(RandomOcclusion(ratio=0.2, shape="pixels").mask(200, (32, 32)))
    assert np.mean(default) < 2.5 and max(default) <= 5
    assert np.mean(pixels) > 100


def test_matches_the_area_of_a_threshold_mode_saliency_occlusion():
    torch.manual_seed(1)
    x, saliency = torch.rand(8, 3, 16, 16), torch.rand(8, 1, 4, 4)
    occlusion = SaliencyOcclusion("salient", threshold=0.5)
    keep = occlusion.mask(saliency, (16, 16))
    occluded_fraction = 1 - keep.mean((1, 2, 3))
    random = RandomOcclusion(fill="zero")
    random(x, ratio=occluded_fraction)
    assert torch.equal(random._params["keep"].sum((1, 2, 3)), keep.sum((1, 2, 3)))


def test_same_on_batch_uses_one_mask():
    keep = RandomOcclusion(ratio=0.3, same_on_batch=True).mask(4, (8, 8))
    assert (keep == keep[0]).all()


def test_fill_and_untouched_pixels():
    x = torch.rand(3, 3, 8, 8) * 0.5 + 0.25
    aug = RandomOcclusion(ratio=0.4, fill=1.0)
    out = aug(x)
    occluded = aug._params["keep"].eq(0).expand_as(x)
    assert out[occluded].eq(1).all() and torch.equal(out[~occluded], x[~occluded])


@pytest.mark.parametrize(
    ("ratio", "error", "match"),
    [
        (1.5, ValueError, "ratio"),
        (torch.tensor([0.1, 0.2]), ValueError, r"shape \[3\]"),
        (torch.tensor([0.1, float("nan"), 0.2]), ValueError, "NaN"),
        (torch.tensor([0.1, 1.2, 0.2]), ValueError, r"\[0, 1\]"),
        (torch.tensor([1, 0, 1]), ValueError, "float"),
    ],
)
def test_bad_ratios_raise(ratio, error, match):
    with pytest.raises(error, match=match):
        RandomOcclusion()(torch.rand(3, 3, 8, 8), ratio=ratio)


def test_bad_shape_raises():
    with pytest.raises(ValueError, match="shape"):
        RandomOcclusion(shape="circle")
