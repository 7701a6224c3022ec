"""Localization metrics on hand-made maps and masks, worked out by hand."""

from __future__ import annotations

import pytest
import torch
from hand_models import FixedMaps, PixelModel, make_pixel_model
from torch import Tensor

from explainaug.evaluate.localization import localization, localization_scores
from explainaug.explain import Saliency
from explainaug.models import SmallCNN


@pytest.fixture
def pixel_model() -> PixelModel:
    return make_pixel_model()


def _mask(pixels: list[int], n: int = 16) -> Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[pixels] = True
    return mask


@pytest.fixture
def maps() -> Tensor:
    """Image 0: pixel i has saliency i. Image 1: only pixel 6 is salient. Image 2: all zero."""
    ramp = torch.arange(16.0)
    single = torch.zeros(16)
    single[6] = 1.0
    return torch.stack([ramp, single, torch.zeros(16)])


@pytest.fixture
def masks() -> Tensor:
    return torch.stack([_mask([0, 1, 14, 15]), _mask([5]), _mask([0, 1])])


def test_scores_by_hand(maps: Tensor, masks: Tensor) -> None:
    scores = {k: v.tolist() for k, v in localization_scores(maps, masks, top=0.2).items()}
    # image 0: energy (0+1+14+15)/120; top 20% = values > 4th largest (12) = {13,14,15};
    # IoU |{14,15}| / |{0,1,13,14,15}|; top-4 = {12..15} holds 2 of 4; argmax 15 is inside.
    # image 1: no energy inside; {6} vs {5}: IoU 0, bbox 0, pointing 0.
    # image 2: an all-zero map has EBPG 0 (not NaN), an empty binarisation (IoU 0); its top-2
    # and argmax are random pixels (ties), so only images 0 and 1 have fixed Bbox and pointing.
    assert scores["ebpg"] == pytest.approx([0.25, 0.0, 0.0])
    assert scores["iou"] == pytest.approx([0.4, 0.0, 0.0])
    assert scores["bbox"][:2] == pytest.approx([0.5, 0.0])
    assert scores["pointing_game"][:2] == [1.0, 0.0]


class ConstantMaps:
    """An "explainer" whose maps are all zero: every pixel is tied."""

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        return torch.zeros(x.shape[0], 1, *x.shape[-2:])


def test_tied_maps_point_at_uniformly_random_pixels_not_the_corner(pixel_model: PixelModel) -> None:
    """With every pixel tied, the pointing game's maximum and the Bbox top-N are uniform draws:
    against masks of the bottom half both score about 1/2 (raster order scored exactly 0)."""
    n = 400
    masks = torch.zeros(n, 1, 4, 4, dtype=torch.bool)
    masks[..., 2:, :] = True
    loader = [(torch.ones(n, 1, 4, 4), torch.ones(n, dtype=torch.long), masks)]
    result = localization(pixel_model, ConstantMaps(), loader)
    # binomial(400, 1/2) hits: 5 standard deviations are 0.125
    assert result["pointing_game"] == pytest.approx(0.5, abs=0.125)
    # Bbox: 8 of 16 pixels drawn, hypergeometric mean 1/2, sd 0.13 per image, 0.0066 over 400
    assert result["bbox"] == pytest.approx(0.5, abs=0.04)
    again = localization(pixel_model, ConstantMaps(), loader)
    other = localization(pixel_model, ConstantMaps(), loader, seed=1)
    assert again == result and other != result  # deterministic given the seed


def test_binarisation_threshold_with_ties() -> None:
    # n = 10, top 0.2 -> threshold is the 3rd largest value (7); strictly greater keeps only
    # pixel 9: the tied 7s all drop out
    maps = torch.tensor([[0.0, 1, 2, 3, 4, 5, 7, 7, 7, 9]])
    masks = _mask([9], 10)[None]
    assert localization_scores(maps, masks, top=0.2)["iou"].tolist() == [1.0]


def test_localization_end_to_end(pixel_model: PixelModel, maps: Tensor, masks: Tensor) -> None:
    explainer = FixedMaps(pixel_model, maps[:2].view(2, 1, 4, 4))
    x = torch.ones(2, 1, 4, 4)
    loader = [
        (x[:1], torch.tensor([1]), masks[:1].view(1, 1, 4, 4)),
        (x[1:], torch.tensor([0]), masks[1:2].view(1, 4, 4).float()),
    ]
    # the second batch's map is the ramp again (FixedMaps slices from the start), now against
    # the mask {5}: energy 5/120, and IoU, bbox and pointing game all 0
    result = localization(pixel_model, explainer, loader)
    expected = {
        "ebpg": (0.25 + 5 / 120) / 2,
        "miou": 0.2,
        "bbox": 0.25,
        "pointing_game": 0.5,
        "pointing_game_tolerance": 0.5,  # 15/224 of 4 pixels is too short to reach {5}
        "pointing_tolerance_pixels": 4 * 15 / 224,
        "n_images": 2,
    }
    assert result == pytest.approx(expected)


def test_low_resolution_maps_are_upsampled() -> None:
    model = SmallCNN(num_classes=3, width=4)
    coarse = torch.zeros(1, 1, 2, 2)
    coarse[0, 0, 1, 1] = 1.0
    mask = torch.zeros(1, 1, 16, 16, dtype=torch.bool)
    mask[..., 8:, 8:] = True
    result = localization(
        model, FixedMaps(model, coarse), [(torch.rand(1, 3, 16, 16), torch.tensor([0]), mask)]
    )
    # bilinear (align_corners=False) 2 -> 16 puts 7/8 of each axis' mass in the lower half
    assert result["pointing_game"] == 1.0
    assert result["ebpg"] == pytest.approx((7 / 8) ** 2)


def test_predicted_target_and_mode_restored() -> None:
    model = SmallCNN(num_classes=3, width=4).train()
    mask = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
    mask[..., 4:12, 4:12] = True
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    loader = [(x, torch.tensor([0, 1]), mask)]
    result = localization(model, Saliency(model), loader, target=None)
    assert model.training and all(m.training for m in model.modules())
    with torch.no_grad():
        predicted = model.eval()(x).argmax(dim=1)  # eval mode, as localization runs it
    model.train()
    as_labels = localization(model, Saliency(model), [(x, predicted, mask)], target="label")
    assert result == as_labels and result["n_images"] == 2


def test_bad_inputs_raise(pixel_model: PixelModel, maps: Tensor, masks: Tensor) -> None:
    explainer = FixedMaps(pixel_model, maps[:1].view(1, 1, 4, 4))
    x, y = torch.ones(1, 1, 4, 4), torch.tensor([1])
    with pytest.raises(ValueError, match="needs object masks"):
        localization(pixel_model, explainer, [(x, y)])
    with pytest.raises(ValueError, match="no batches"):
        localization(pixel_model, explainer, [])
    with pytest.raises(ValueError, match="masks must have shape"):
        localization(pixel_model, explainer, [(x, y, torch.ones(1, 1, 8, 8))])
    with pytest.raises(ValueError, match="empty mask"):
        localization(pixel_model, explainer, [(x, y, torch.zeros(1, 1, 4, 4))])
    with pytest.raises(ValueError, match="0 and 1"):
        localization(pixel_model, explainer, [(x, y, torch.full((1, 1, 4, 4), 0.5))])
    with pytest.raises(ValueError, match="batch size 1"):
        two = [(torch.ones(2, 1, 4, 4), torch.tensor([1, 1]), torch.ones(2, 1, 4, 4))]
        localization(pixel_model, explainer, two)
    with pytest.raises(ValueError, match="target"):
        localization(pixel_model, explainer, [(x, y, masks[:1].view(1, 1, 4, 4))], target="true")


def _torchray_hit(mask: Tensor, point: tuple[int, int], tolerance: float) -> bool:
    """TorchRay's PointingGame.evaluate: a mask pixel strictly closer than the tolerance."""
    v, u = torch.meshgrid(
        (torch.arange(mask.shape[0], dtype=torch.float32) - point[1]) ** 2,
        (torch.arange(mask.shape[1], dtype=torch.float32) - point[0]) ** 2,
        indexing="ij",
    )
    return bool((mask & ((v + u) < tolerance**2)).any())


def test_tolerant_pointing_game_matches_torchray(pixel_model: PixelModel) -> None:
    """On 32x32 images the tolerance is 15/224 * 32 = 2.14 pixels: a maximum 2 pixels beside
    the object hits, 3 pixels away misses, as TorchRay's rule says; the exact game misses both."""
    size, n = 32, 6
    masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
    masks[..., 10:20, 10:20] = True
    maps = torch.zeros(n, 1, size, size)
    peaks = [(15, 21), (15, 22), (8, 15), (20, 20), (21, 21), (12, 12)]  # (row, column)
    for index, (row, column) in enumerate(peaks):
        maps[index, 0, row, column] = 1.0
    loader = [(torch.ones(n, 1, size, size), torch.ones(n, dtype=torch.long), masks)]
    model = PixelModel(torch.zeros(1, size, size), 0.0)
    result = localization(model, FixedMaps(model, maps), loader)
    radius = 15 / 224 * size
    expected = [_torchray_hit(masks[i, 0], (c, r), radius) for i, (r, c) in enumerate(peaks)]
    assert expected == [True, False, True, True, False, True]
    assert result["pointing_game_tolerance"] == pytest.approx(sum(expected) / n)
    assert result["pointing_game"] == pytest.approx(1 / n)  # only (12, 12) is inside
    assert result["pointing_tolerance_pixels"] == pytest.approx(radius)
    scores = localization_scores(
        maps.flatten(1), masks.flatten(1), size=(size, size), pointing_tolerance=0.0
    )
    assert scores["pointing_game_tolerance"].sum() == 0  # zero tolerance: nothing is closer than 0
