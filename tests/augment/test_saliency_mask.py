"""SaliencyMask: the official ExCon rule, exact keep ratios, Kornia conventions, edge cases."""

import numpy as np
import pytest
import torch

from explainaug.augment import SaliencyMask


def official_excon_view(images: np.ndarray, cams: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """ExCon's data_aug rule in numpy: min-max normalise each CAM, fill pixels <= 0.5."""
    out = images.copy()
    for i in range(images.shape[0]):
        cam = cams[i]
        cam = (cam - cam.min()) / (cam.max() - cam.min())
        out[i][:, cam <= 0.5] = fill[:, None]
    return out


def test_threshold_matches_the_official_rule_on_random_maps():
    torch.manual_seed(1)
    x, cams = torch.rand(6, 3, 16, 16), torch.randn(6, 16, 16) * 5
    mean = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
    expected = official_excon_view(x.numpy(), cams.numpy(), mean)
    got = SaliencyMask(threshold=0.5, fill="mean", mean=tuple(mean))(x, cams)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_threshold_on_a_hand_made_map():
    # min 2, max 6: normalised [0, .25, .5, .75, 1]; 0.5 itself is masked (<= 0.5).
    saliency = torch.tensor([[[[2.0, 3.0, 4.0, 5.0, 6.0]]]])
    keep = SaliencyMask().mask(saliency, (1, 5))
    assert keep.flatten().tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    keep = SaliencyMask(threshold=0.2).mask(saliency, (1, 5))
    assert keep.flatten().tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]


def test_low_resolution_maps_are_upsampled_bilinearly():
    saliency = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    keep = SaliencyMask().mask(saliency, (4, 4))
    upsampled = torch.nn.functional.interpolate(saliency, size=(4, 4), mode="bilinear")
    assert torch.equal(keep, (upsampled > 0.5).float())
    assert keep[0, 0, :, 2:].eq(1).all() and keep[0, 0, :, :2].eq(0).all()


def test_keep_ratio_keeps_the_exact_top_pixels_and_draws_among_ties():
    torch.manual_seed(2)
    saliency = torch.randint(0, 4, (5, 1, 6, 7)).float()  # many ties
    keep = SaliencyMask(ratio=0.3).mask(saliency, (6, 7))
    k = round(0.3 * 42)
    assert keep.sum((1, 2, 3)).tolist() == [float(k)] * 5
    for image, kept in zip(saliency.flatten(1).numpy(), keep.flatten(1).numpy(), strict=False):
        boundary = np.sort(image)[::-1][k - 1]  # the k-th largest score
        assert kept[image > boundary].all()  # everything above the boundary is kept
        assert not kept[image < boundary].any()  # nothing below it
        assert kept[image == boundary].sum() == k - (image > boundary).sum()


def test_forward_fills_exactly_outside_the_mask():
    torch.manual_seed(3)
    x, saliency = torch.rand(4, 3, 8, 8), torch.rand(4, 1, 8, 8)
    aug = SaliencyMask(ratio=0.25, fill=0.3)
    out = aug(x, saliency)
    keep = aug.mask(saliency, (8, 8)).bool().expand_as(x)
    assert torch.equal(out[keep], x[keep])
    assert out[~keep].eq(0.3).all()
    assert torch.equal(aug._params["keep"], keep[:, :1].float())


def test_constant_and_zero_maps_keep_nothing_by_threshold_and_random_pixels_by_ratio():
    for value in (0.0, 3.0):
        saliency = torch.full((2, 1, 4, 4), value)
        assert SaliencyMask().mask(saliency, (4, 4)).sum() == 0
        draws = [
            SaliencyMask(ratio=0.25).mask(
                saliency, (4, 4), generator=torch.Generator().manual_seed(seed)
            )
            for seed in range(3)
        ]
        assert all(keep.sum((1, 2, 3)).tolist() == [4.0, 4.0] for keep in draws)
        assert not torch.equal(draws[0], draws[1]) or not torch.equal(draws[1], draws[2])


def test_nan_maps_raise_and_never_give_nan_images():
    saliency = torch.rand(2, 1, 4, 4)
    saliency[1, 0, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        SaliencyMask()(torch.rand(2, 3, 4, 4), saliency)
    with pytest.raises(ValueError, match="NaN"):
        SaliencyMask().mask(saliency, (4, 4))


@pytest.mark.parametrize(
    ("x", "saliency", "error", "match"),
    [
        (torch.rand(2, 3, 8, 8), torch.rand(3, 1, 8, 8), ValueError, "batch size"),
        (torch.rand(2, 3, 8, 8), torch.rand(2, 2, 8, 8), ValueError, "shape"),
        (torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8, dtype=torch.long), TypeError, "floating"),
        (torch.rand(2, 3, 8, 8), torch.rand(2, 1, 8, 8, device="meta"), ValueError, "meta"),
        (torch.ones(2, 3, 8, 8, dtype=torch.uint8), torch.rand(2, 1, 8, 8), TypeError, "dtype"),
        (torch.rand(2, 3, 8, 8) * 2, torch.rand(2, 1, 8, 8), ValueError, r"\[0, 1\]"),
        (torch.full((2, 3, 8, 8), float("nan")), torch.rand(2, 1, 8, 8), ValueError, "finite"),
        (torch.rand(8, 8), torch.rand(8, 8), ValueError, "shape"),
        (torch.rand(3, 8, 8), torch.rand(2, 8, 8), ValueError, "one image"),
        (torch.rand(2, 3, 8, 8), "map", TypeError, "Tensor"),
    ],
)
def test_mismatches_raise(x, saliency, error, match):
    with pytest.raises(error, match=match):
        SaliencyMask()(x, saliency)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="threshold"):
        SaliencyMask(threshold=1.5)
    with pytest.raises(ValueError, match="ratio"):
        SaliencyMask(ratio=-0.1)
    with pytest.raises(ValueError, match="p must"):
        SaliencyMask(p=2.0)
    with pytest.raises(ValueError, match="saliency maps"):
        SaliencyMask()(torch.rand(1, 3, 4, 4))


def test_float16_maps_are_accepted():
    x, saliency = torch.rand(2, 3, 8, 8), torch.rand(2, 1, 4, 4)
    expected = SaliencyMask()(x, saliency.half().float())
    assert torch.equal(SaliencyMask()(x, saliency.half()), expected)


def test_soft_mask_passes_gradients_to_the_map_and_approaches_the_hard_mask():
    torch.manual_seed(4)
    x = torch.rand(2, 3, 8, 8)
    saliency = torch.rand(2, 1, 8, 8, requires_grad=True)
    out = SaliencyMask(soft=True, fill="zero")(x, saliency)
    out.sum().backward()
    assert saliency.grad is not None and saliency.grad.abs().sum() > 0
    cold = SaliencyMask(soft=True, temperature=1e-4).mask(saliency.detach(), (8, 8))
    hard = SaliencyMask().mask(saliency.detach(), (8, 8))
    assert (cold - hard).abs().max() < 1e-3
    soft_ratio = SaliencyMask(soft=True, ratio=0.5, temperature=1e-4)
    hard_ratio = SaliencyMask(ratio=0.5)
    torch.testing.assert_close(
        soft_ratio.mask(saliency.detach(), (8, 8)),
        hard_ratio.mask(saliency.detach(), (8, 8)),
        atol=1e-3,
        rtol=0,
    )
