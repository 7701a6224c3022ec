"""Fill values: dataset mean, per-image mean, zero, constant, Gaussian blur (vs scipy), noise."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from explainaug.augment import Fill, SaliencyMask


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.rand(2, 3, 12, 10)


def test_dataset_mean(x):
    values = Fill("mean", mean=(0.1, 0.2, 0.3))(x)
    assert values.flatten().tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_per_image_mean_without_a_dataset_mean(x):
    torch.testing.assert_close(Fill("mean")(x).squeeze(), x.mean(dim=(2, 3)))


def test_zero_and_constant(x):
    assert torch.equal(Fill("zero")(x).expand_as(x), torch.zeros_like(x))
    assert Fill(0.25)(x).expand_as(x).eq(0.25).all()


@pytest.mark.parametrize("sigma", [1.0, 2.0])
def test_blur_matches_scipy_gaussian_filter_with_nearest_borders(x, sigma):
    got = Fill("blur", blur_sigma=sigma)(x).numpy()
    expected = ndimage.gaussian_filter(
        x.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=3.0
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_blur_works_on_images_smaller_than_the_kernel():
    x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    got = Fill("blur", blur_sigma=3.0)(x)  # a 19-tap kernel on 4x4 images
    expected = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, 3, 3), mode="nearest", truncate=3.0)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_noise_is_uniform_in_unit_range_and_per_pixel(x):
    fill = Fill("noise")
    noise = fill.draw(torch.zeros(64, 3, 16, 16), torch.Generator().manual_seed(0))
    assert 0 <= noise.min() and noise.max() < 1
    assert abs(noise.mean().item() - 0.5) < 0.01 and abs(noise.var().item() - 1 / 12) < 0.005
    same = fill.draw(x, same_on_batch=True)
    assert torch.equal(same[0], same[1])
    with pytest.raises(ValueError, match="noise"):
        fill(x)


def test_masked_pixels_take_each_fill(x):
    saliency = torch.rand(2, 1, 12, 10)
    keep = SaliencyMask().mask(saliency, (12, 10)).bool().expand_as(x)
    for fill in ["mean", "zero", "blur", 0.7]:
        out = SaliencyMask(fill=fill)(x, saliency)
        expected = Fill(fill)(x).expand_as(x)
        torch.testing.assert_close(out[~keep], expected[~keep], rtol=0, atol=1e-6)
        assert torch.equal(out[keep], x[keep])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"fill": "gray"}, ValueError, "fill must be"),
        ({"fill": 1.5}, ValueError, r"\[0, 1\]"),
        ({"fill": None}, TypeError, "fill must be"),
        ({"fill": "zero", "mean": (0.5, 0.5, 0.5)}, ValueError, "mean="),
        ({"fill": "mean", "mean": (0.5, 300.0, 0.5)}, ValueError, "pixel space"),
        ({"fill": "blur", "blur_sigma": 0.0}, ValueError, "blur_sigma"),
    ],
)
def test_bad_fills_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        Fill(**kwargs)


def test_mean_with_the_wrong_channel_count_raises(x):
    with pytest.raises(ValueError, match="channels"):
        SaliencyMask(mean=(0.5,))(x, torch.rand(2, 1, 4, 4))
