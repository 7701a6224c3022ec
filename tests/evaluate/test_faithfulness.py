"""Faithfulness metrics on a hand-built model whose class probability depends on known pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
from hand_models import FixedMaps, PixelModel, make_pixel_model, make_row_maps
from torch import Tensor

from explainaug.evaluate.faithfulness import (
    blurred_canvas,
    faithfulness,
    rise_blur_kernel,
    trapezoid_auc,
)
from explainaug.explain import Saliency
from explainaug.models import Normalize, SmallCNN


@pytest.fixture
def pixel_model() -> PixelModel:
    return make_pixel_model()


@pytest.fixture
def row_maps() -> Tensor:
    return make_row_maps()


class TwoChannelMaps:
    """A callable "explainer" that returns maps of the wrong shape [B, 2, H, W]."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def __call__(self, x: Tensor, target: Tensor) -> Tensor:
        return torch.rand(x.shape[0], 2, *x.shape[-2:])


def sig(value: float) -> float:
    return 1 / (1 + math.exp(-value))


def _auc(curve: list[float]) -> float:
    return (sum(curve) - (curve[0] + curve[-1]) / 2) / (len(curve) - 1)


@pytest.fixture
def ones_loader() -> list[tuple[Tensor, Tensor]]:
    return [(torch.ones(2, 1, 4, 4), torch.tensor([1, 1]))]


def test_average_drop_and_increase_by_hand(
    pixel_model: PixelModel, row_maps: Tensor, ones_loader: list
) -> None:
    result = faithfulness(pixel_model, FixedMaps(pixel_model, row_maps), ones_loader, keep=0.25)
    y = sig(1)  # evidence 2 - bias 1
    kept_a, kept_b = sig(3), sig(-3)  # keep row 0 only (evidence 4) / row 3 only (evidence -2)
    assert result["average_drop_pct"] == pytest.approx(100 * (y - kept_b) / y / 2, rel=1e-5)
    assert result["increase_in_confidence_pct"] == pytest.approx(50.0)
    assert result["drop_rate"] == pytest.approx(0.5)
    assert result["average_increase"] == pytest.approx((kept_a - y) / y / 2, rel=1e-5)
    assert result["n_images"] == 2


def test_salient_drop_and_nonsalient_change_by_hand(
    pixel_model: PixelModel, row_maps: Tensor, ones_loader: list
) -> None:
    result = faithfulness(
        pixel_model, FixedMaps(pixel_model, row_maps), ones_loader, occlusion_ratio=0.25
    )
    y = sig(1)
    # image 0: salient = row 0 (evidence -> -2), non-salient = row 3 (evidence -> 4)
    # image 1: salient = row 3 (evidence -> 4, no drop), non-salient = row 0 (evidence -> -2)
    assert result["salient_drop"] == pytest.approx((y - sig(-3)) / y / 2, rel=1e-5)
    nonsalient = (abs(y - sig(3)) + abs(y - sig(-3))) / y / 2
    assert result["nonsalient_change"] == pytest.approx(nonsalient, rel=1e-5)


def test_deletion_curve_and_auc_by_hand(
    pixel_model: PixelModel, row_maps: Tensor, ones_loader: list
) -> None:
    result = faithfulness(
        pixel_model, FixedMaps(pixel_model, row_maps), ones_loader, deletion_steps=4
    )
    # one row removed per step; image 0 removes rows 0,1,2,3; image 1 rows 3,2,1,0
    curve_a = [sig(1), sig(-3), sig(-3), sig(-3), sig(-1)]
    curve_b = [sig(1), sig(3), sig(3), sig(3), sig(-1)]
    expected = [(a + b) / 2 for a, b in zip(curve_a, curve_b, strict=False)]
    np.testing.assert_allclose(result["deletion_curve"], expected, rtol=1e-5)
    assert result["deletion_auc"] == pytest.approx((_auc(curve_a) + _auc(curve_b)) / 2, rel=1e-5)
    # insertion starts from RISE's blur of the image (zero padding = the fill, 0 here)
    blurred = _rise_blur(torch.ones(1, 1, 4, 4, dtype=torch.float64), 0.0)[0, 0]
    weight = pixel_model.weight.detach()[0].double()
    inserted = []
    for rows_a, rows_b in zip(
        ([], [0], [0, 1], [0, 1, 2], [0, 1, 2, 3]),
        ([], [3], [2, 3], [1, 2, 3], [0, 1, 2, 3]),
        strict=True,
    ):
        curve = []
        for rows in (rows_a, rows_b):
            image = blurred.clone()
            image[rows] = 1.0
            curve.append(sig(float((weight * image).sum()) - 1.0))
        inserted.append(sum(curve) / 2)
    np.testing.assert_allclose(result["insertion_curve"], inserted, rtol=1e-5)


def _rise_gkern(klen: int = 11, nsig: float = 5.0) -> np.ndarray:
    """RISE's gkern (the paper's notebook): a Gaussian-smoothed impulse in a klen x klen box."""
    impulse = np.zeros((klen, klen))
    impulse[klen // 2, klen // 2] = 1
    return scipy.ndimage.gaussian_filter(impulse, nsig)


def _rise_blur(x: Tensor, fill: float) -> Tensor:
    """RISE's blur: conv2d with gkern on the normalised image, zero padding; normalised zero
    is the fill colour, so in [0, 1] space it blurs x - fill and adds fill back."""
    kernel = torch.from_numpy(_rise_gkern()).to(x.dtype)
    weight = kernel.expand(x.shape[1], 1, 11, 11)
    return torch.nn.functional.conv2d(x - fill, weight, padding=5, groups=x.shape[1]) + fill


def test_insertion_uses_rises_blur(pixel_model: PixelModel, row_maps: Tensor) -> None:
    x = torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = pixel_model.double()
    result = faithfulness(
        model,
        FixedMaps(model, row_maps[:1].double()),
        [(x, torch.tensor([1]))],
        deletion_steps=4,
        fill=0.25,
    )
    blurred = _rise_blur(x, 0.0)[0, 0].numpy()  # padded with the model's normalised zero
    weight = model.weight.detach()[0].numpy()
    with torch.no_grad():
        predicted = int(model(x).argmax())
    expected = []
    for inserted_rows in range(5):
        image = blurred.copy()
        image[:inserted_rows] = x[0, 0].numpy()[:inserted_rows]
        evidence = float((weight * image).sum())
        p1 = sig(evidence - 1.0)
        expected.append(p1 if predicted == 1 else 1 - p1)
    np.testing.assert_allclose(result["insertion_curve"], expected, rtol=1e-6)


def test_rise_kernel_is_the_folded_gaussian_of_the_reference() -> None:
    np.testing.assert_allclose(rise_blur_kernel().numpy(), _rise_gkern(), rtol=1e-12, atol=1e-15)
    # the tails fold back: the corner weighs far more than an 11-tap truncated Gaussian's
    truncated = np.exp(-0.5 * (np.arange(-5, 6) / 5.0) ** 2)
    truncated = np.outer(truncated, truncated) / truncated.sum() ** 2
    assert rise_blur_kernel()[0, 0] > 1.05 * truncated[0, 0]
    x = torch.rand(2, 3, 12, 12, dtype=torch.float64)
    fill = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64).view(1, 3, 1, 1)
    expected = torch.cat([_rise_blur(x[:, c : c + 1], float(fill[0, c])) for c in range(3)], 1)
    torch.testing.assert_close(blurred_canvas(x, fill), expected)


def test_fill_options(pixel_model: PixelModel, row_maps: Tensor, ones_loader: list) -> None:
    explainer = FixedMaps(pixel_model, row_maps)
    # fill 0.5: image 0 keeps row 0 and row 3 becomes 0.5 -> evidence 4 - 1 = 3
    half = faithfulness(pixel_model, explainer, ones_loader, keep=0.25, fill=0.5)
    per_channel = faithfulness(pixel_model, explainer, ones_loader, keep=0.25, fill=[0.5])
    assert half == per_channel
    assert half["average_increase"] == pytest.approx((sig(2) - sig(1)) / sig(1) / 2, rel=1e-5)
    # fill="mean" on a constant image changes nothing
    mean = faithfulness(pixel_model, explainer, ones_loader, keep=0.25, fill="mean")
    assert mean["average_drop_pct"] == pytest.approx(0.0, abs=1e-6)
    assert mean["average_increase"] == pytest.approx(0.0, abs=1e-6)
    # the augmentations' fill names work here too: "zero" is the papers' black fill
    zero = faithfulness(pixel_model, explainer, ones_loader, keep=0.25, fill="zero")
    black = faithfulness(pixel_model, explainer, ones_loader, keep=0.25, fill=0.0)
    assert zero.pop("fill") == "zero" and black.pop("fill") == [0.0]  # the report states it
    assert zero == black


def test_chunking_does_not_change_results_and_mode_is_restored() -> None:
    model = SmallCNN(num_classes=3, width=4).train()
    loader = [(torch.rand(3, 3, 16, 16), torch.tensor([0, 1, 2]))] * 2
    big = faithfulness(model, Saliency(model), loader, deletion_steps=8, batch_size=1024)
    small = faithfulness(model, Saliency(model), loader, deletion_steps=8, batch_size=7)
    for key, value in big.items():
        np.testing.assert_allclose(small[key], value, rtol=1e-5, atol=1e-7)
    assert model.training and all(m.training for m in model.modules())
    assert big["n_images"] == 6


def test_trapezoid_auc() -> None:
    assert trapezoid_auc(torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])).tolist() == [1.0, 0.5]


def test_bad_inputs_raise(pixel_model: PixelModel, row_maps: Tensor, ones_loader: list) -> None:
    explainer = FixedMaps(pixel_model, row_maps)
    with pytest.raises(ValueError, match="no batches"):
        faithfulness(pixel_model, explainer, [])
    with pytest.raises(ValueError, match="batch size 1"):
        faithfulness(pixel_model, FixedMaps(pixel_model, row_maps[:1]), ones_loader)
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        faithfulness(pixel_model, TwoChannelMaps(pixel_model), ones_loader)
    with pytest.raises(ValueError, match="different model"):
        faithfulness(
            pixel_model, FixedMaps(PixelModel(torch.zeros(1, 4, 4), 0.0), row_maps), ones_loader
        )
    with pytest.raises(ValueError, match="keep"):
        faithfulness(pixel_model, explainer, ones_loader, keep=1.5)
    with pytest.raises(ValueError, match="fill"):
        faithfulness(pixel_model, explainer, ones_loader, fill="black")
    with pytest.raises(ValueError, match="fill"):
        faithfulness(pixel_model, explainer, ones_loader, fill=2.0)
    with pytest.raises(ValueError, match="deletion_steps"):
        faithfulness(pixel_model, explainer, ones_loader, deletion_steps=0)
    with pytest.raises(ValueError, match="batch"):
        faithfulness(pixel_model, explainer, [(torch.ones(2, 1, 4, 4),)])


def test_label_target_scores_the_label_class(pixel_model: PixelModel, row_maps: Tensor) -> None:
    # label 0 on all-ones images: p_0 = 1 - p_1, so Y = sigmoid(-1); keeping row 0 / row 3 only
    # gives p_0 = sigmoid(-3) / sigmoid(3)
    loader = [(torch.ones(2, 1, 4, 4), torch.tensor([0, 0]))]
    maps = FixedMaps(pixel_model, row_maps)
    result = faithfulness(pixel_model, maps, loader, keep=0.25, target="label")
    y, kept_a = sig(-1), sig(-3)
    assert result["average_drop_pct"] == pytest.approx(100 * (y - kept_a) / y / 2, rel=1e-5)
    assert result["increase_in_confidence_pct"] == pytest.approx(50.0)
    # when every label is the prediction, "label" and "predicted" agree
    predicted_loader = [(torch.ones(2, 1, 4, 4), torch.tensor([1, 1]))]
    assert faithfulness(pixel_model, maps, predicted_loader, target="label") == faithfulness(
        pixel_model, maps, predicted_loader
    )
    with pytest.raises(ValueError, match="target must be None .the predicted class. or .label."):
        faithfulness(pixel_model, maps, loader, target="true")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        faithfulness(
            pixel_model, maps, [(torch.ones(2, 1, 4, 4), torch.tensor([0, 5]))], target="label"
        )


def _half_model(top: bool) -> PixelModel:
    """16x16 images; class 1's evidence is the mean over the top (or bottom) half times 8."""
    weight = torch.zeros(1, 16, 16)
    weight[0, :8] = 1 / 16
    return PixelModel(weight if top else weight.flip(1), bias0=6.0)


def test_tied_pixels_are_occluded_uniformly_by_the_metrics() -> None:
    """Non-salient change on maps that are 0 except a central blob: 128 of the 252 tied zeros
    are occluded, a uniform draw, so a model reading the top half and its mirror image reading
    the bottom half both see a hypergeometric number m of occluded pixels and score the
    expected NC = E|Y - sigmoid(2 - m/16)| / Y (raster order gave 0.016 for the top half).
    """
    n = 200
    maps = torch.zeros(n, 1, 16, 16)
    maps[..., 7:9, 7:9] = 1.0  # symmetric under a vertical flip
    loader = [(torch.ones(n, 1, 16, 16), torch.ones(n, dtype=torch.long))]
    y = sig(2)
    m = np.arange(0, 127)
    pmf = scipy.stats.hypergeom(252, 126, 128).pmf(m)
    expected = float((pmf * np.abs(y - 1 / (1 + np.exp(-(2 - m / 16)))) / y).sum())
    for top in (True, False):
        model = _half_model(top)
        result = faithfulness(
            model, FixedMaps(model, maps), loader, occlusion_ratio=0.5, fill=0.0, deletion_steps=2
        )
        # per-image sd is about 0.06, so 0.02 is more than 4 standard errors over 200 images
        assert result["nonsalient_change"] == pytest.approx(expected, abs=0.02), top


def test_average_drop_keeps_int_of_the_fraction_like_excon() -> None:
    """keep=0.15 of 10 pixels keeps int(1.5) = 1 pixel (round would keep 2): the second most
    salient pixel, which carries all the evidence, is then filled and the confidence drops."""
    weight = torch.zeros(1, 2, 5)
    weight[0, 0, 1] = 2.0
    model = PixelModel(weight, bias0=1.0)
    maps = torch.arange(10.0, 0, -1).view(1, 1, 2, 5)  # pixel 0 most salient, then pixel 1
    loader = [(torch.ones(1, 1, 2, 5), torch.tensor([1]))]
    result = faithfulness(model, FixedMaps(model, maps), loader, keep=0.15, fill=0.0)
    assert result["average_drop_pct"] == pytest.approx(100 * (sig(1) - sig(-1)) / sig(1))


def test_default_fill_is_the_models_normalised_zero(
    pixel_model: PixelModel, row_maps: Tensor, ones_loader: list
) -> None:
    """With a Normalize layer in front, filled pixels become exactly 0 after normalisation, so
    they carry no evidence: the hand-worked numbers of a bare model filled with 0 come back."""
    model = torch.nn.Sequential(Normalize((0.5,), (0.5,)), pixel_model)  # ones -> 1, fill -> 0
    result = faithfulness(model, FixedMaps(model, row_maps), ones_loader, keep=0.25)
    bare = faithfulness(pixel_model, FixedMaps(pixel_model, row_maps), ones_loader, keep=0.25)
    assert result["fill"] == [0.5] and bare["fill"] == [0.0]
    for key in ("average_drop_pct", "average_increase", "deletion_auc", "salient_drop"):
        assert result[key] == pytest.approx(bare[key], rel=1e-5), key
    black = faithfulness(model, FixedMaps(model, row_maps), ones_loader, keep=0.25, fill=0.0)
    assert black["average_increase"] != pytest.approx(result["average_increase"], rel=1e-3)
