"""RISE against a per-mask loop and the paper's mask construction; Occlusion against Captum."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from captum.attr import Occlusion as CaptumOcclusion

from explainaug.explain import RISE, Occlusion


def test_rise_equals_a_per_mask_loop_over_the_same_masks(cnn, images, labels):
    rise = RISE(cnn, n_masks=40, grid_size=3, p=0.4, seed=7, internal_batch_size=7)
    masks = rise.masks((16, 16), images.device)
    expected = torch.zeros(3, 1, 16, 16)
    with torch.no_grad():
        for mask in masks:
            scores = cnn(images * mask).softmax(dim=1).gather(1, labels[:, None])
            expected += scores[:, :, None, None] * mask
    expected /= 40 * 0.4
    torch.testing.assert_close(rise.attribute(images, labels), expected, rtol=1e-5, atol=1e-6)


def test_rise_logit_scores_are_the_logits_weighting_masks(cnn, images, labels):
    rise = RISE(cnn, n_masks=8, seed=1, score="logit")
    masks = rise.masks((16, 16), images.device)
    with torch.no_grad():
        logits = torch.stack([cnn(images * m).gather(1, labels[:, None])[:, 0] for m in masks])
    expected = torch.einsum("nb,nhw->bhw", logits, masks[:, 0]) / (8 * 0.5)
    torch.testing.assert_close(rise.attribute(images, labels)[:, 0], expected, rtol=1e-5, atol=1e-5)
    assert bool((rise(images, labels) >= 0).all())


def test_rise_masks_follow_the_papers_construction():
    # Each mask: the binary s x s grid upsampled to (s + 1) * cell, cropped at its shift.
    rise = RISE(torch.nn.Linear(1, 1), n_masks=6, grid_size=4, p=0.5, seed=3)
    size = (13, 10)
    grids, shifts = rise.mask_parameters(torch.device("cpu"))
    cells = (math.ceil(13 / 4), math.ceil(10 / 4))
    masks = rise.masks(size, torch.device("cpu"))
    for grid, shift, mask in zip(grids, shifts, masks, strict=True):
        up = F.interpolate(
            grid[None, None].float(), size=(5 * cells[0], 5 * cells[1]), mode="bilinear"
        )
        dy, dx = int(shift[0] * cells[0]), int(shift[1] * cells[1])
        assert 0 <= dy < cells[0] and 0 <= dx < cells[1]
        torch.testing.assert_close(mask[0], up[0, 0, dy : dy + 13, dx : dx + 10].clamp(0, 1))
    assert set(grids.unique().tolist()) <= {False, True}


def test_rise_is_deterministic_for_a_seed_and_depends_on_it(cnn, images, labels):
    first = RISE(cnn, n_masks=16, seed=0)(images, labels)
    torch.testing.assert_close(
        RISE(cnn, n_masks=16, seed=0, internal_batch_size=5)(images, labels), first
    )
    assert not torch.allclose(RISE(cnn, n_masks=16, seed=1)(images, labels), first)


def test_rise_keeps_cells_with_probability_p():
    grids, _ = RISE(torch.nn.Linear(1, 1), n_masks=4000, p=0.3, seed=0).mask_parameters(
        torch.device("cpu")
    )
    assert abs(grids.float().mean().item() - 0.3) < 0.01


@pytest.mark.parametrize(
    ("window", "stride", "baselines"),
    [((4, 4), (4, 4), 0.0), ((5, 3), (3, 2), 0.0), ((16, 16), (1, 1), 0.0), ((3, 6), (2, 5), 0.5)],
)
def test_occlusion_equals_captum(cnn, images, labels, window, stride, baselines):
    ours = Occlusion(
        cnn, window=window, stride=stride, baselines=baselines, internal_batch_size=11
    ).attribute(images, labels)
    theirs = CaptumOcclusion(cnn).attribute(
        images,
        sliding_window_shapes=(3, *window),
        strides=(3, *stride),
        baselines=baselines,
        target=labels,
        perturbations_per_eval=4,
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_occlusion_maps_are_the_positive_part(cnn, images, labels):
    occlusion = Occlusion(cnn, window=4, stride=2)
    raw = occlusion.attribute(images, labels)
    assert bool((raw < 0).any())
    torch.testing.assert_close(occlusion(images, labels), raw[:, :1].clamp_min(0))


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"window": (4, 5, 6)}, ValueError, r"window must be an int or a pair"),
        ({"window": 0}, ValueError, r"window must be an int >= 1, got 0"),
        ({"window": 2, "stride": 3}, ValueError, r"stride must not exceed the window \(2, 2\)"),
        ({"baselines": "zero"}, TypeError, r"baselines must be a number, got str"),
    ],
)
def test_occlusion_rejects_bad_settings(cnn, options, error, match):
    with pytest.raises(error, match=match):
        Occlusion(cnn, **options)


def test_occlusion_window_larger_than_the_image_is_rejected(cnn, images):
    with pytest.raises(ValueError, match=r"window \(20, 20\) must fit in the image \(16, 16\)"):
        Occlusion(cnn, window=20, stride=4)(images, 0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_masks": 0}, "n_masks must be an int >= 1"),
        ({"p": 1.5}, r"p must lie in \(0, 1\)"),
        ({"score": "prob"}, "score must be one of"),
    ],
)
def test_rise_rejects_bad_settings(cnn, options, match):
    with pytest.raises(ValueError, match=match):
        RISE(cnn, **options)
