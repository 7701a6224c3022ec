"""IntegratedGradCAM against a per-image, per-step loop of the official algorithm."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from explainaug.explain import GradCAM, IntegratedGradCAM


def _loop_reference(
    model: nn.Module,
    layer: nn.Module,
    x: Tensor,
    target: Tensor,
    steps: int,
    subtract_baseline: bool,
) -> Tensor:
    """The official recipe, one image and one path step at a time."""
    store = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: store.__setitem__("a", out))
    try:
        with torch.no_grad():
            model(torch.zeros_like(x[:1]))
        baseline = store["a"] if subtract_baseline else 0.0
        maps = []
        for image, label in zip(x, target.tolist(), strict=False):
            total = 0.0
            for step in range(steps):  # alphas s/m for s = 0..m-1: baseline in, input out
                logits = model((step / steps) * image[None])
                (grad,) = torch.autograd.grad(logits[0, label], store["a"])
                weights = grad.mean(dim=(2, 3), keepdim=True)
                total = total + torch.relu(((store["a"] - baseline) * weights).sum(1))
            maps.append(total)
    finally:
        handle.remove()
    return torch.stack(maps)


@pytest.mark.parametrize("subtract_baseline", [False, True])
@pytest.mark.parametrize("internal_batch_size", [None, 4, 1000])
def test_matches_per_image_per_step_loop(
    cnn, images, labels, subtract_baseline, internal_batch_size
):
    # 3 images x 5 steps = 15 interpolants: chunks of 4 straddle image boundaries.
    ours = IntegratedGradCAM(
        cnn,
        "block3",
        n_steps=5,
        subtract_baseline=subtract_baseline,
        internal_batch_size=internal_batch_size,
    ).attribute(images, labels)
    expected = _loop_reference(cnn, cnn.block3, images, labels, 5, subtract_baseline)
    assert ours.shape == (3, 1, 4, 4) and (ours >= 0).all() and ours.sum() > 0
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)


def test_target_none_explains_the_class_predicted_for_the_input(cnn, images):
    igcam = IntegratedGradCAM(cnn, n_steps=4)
    predicted = cnn(images).argmax(dim=1)
    torch.testing.assert_close(igcam.attribute(images), igcam.attribute(images, predicted))


def test_one_step_is_relu_gradcam_of_the_black_image(cnn, images, labels):
    # n_steps=1 keeps only alpha=0: the baseline itself.
    one_step = IntegratedGradCAM(cnn, n_steps=1).attribute(images, labels)
    black = GradCAM(cnn).attribute(torch.zeros_like(images), labels).relu()
    torch.testing.assert_close(one_step, black)
    subtracted = IntegratedGradCAM(cnn, n_steps=1, subtract_baseline=True)
    # Zero up to float rounding (the baseline runs as a batch of one, the interpolants as three).
    torch.testing.assert_close(
        subtracted.attribute(images, labels), torch.zeros_like(one_step), rtol=0, atol=1e-7
    )


def test_call_upsamples_the_raw_map_bilinearly(cnn, images, labels):
    igcam = IntegratedGradCAM(cnn, n_steps=3)
    raw = igcam.attribute(images, labels)
    expected = nn.functional.interpolate(raw, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(igcam(images, labels), expected)


class _Mask(nn.Module):
    def __init__(self, region: Tensor) -> None:
        super().__init__()
        self.register_buffer("region", region)

    def forward(self, features: Tensor) -> Tensor:
        return features * self.region


@pytest.mark.parametrize("corner", [(0, 0), (4, 5)])
def test_map_mass_concentrates_in_the_region_the_decision_reads(corner):
    # Stride-2 features (8x8 for 16x16 images); the classifier pools only a 3x3 region of them.
    torch.manual_seed(0)
    top, left = corner
    region = torch.zeros(1, 1, 8, 8)
    region[..., top : top + 3, left : left + 3] = 1
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        _Mask(region),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 2),
    ).eval()
    with torch.no_grad():  # class 0 reads positive evidence from every channel: a non-empty map
        model[5].weight[0].uniform_(0.5, 1.0)
    igcam = IntegratedGradCAM(model, layer="2", n_steps=8)
    x = torch.rand(4, 3, 16, 16)
    raw = igcam.attribute(x, 0)
    assert ((raw * region).sum(dim=(1, 2, 3)) > 0).all()
    torch.testing.assert_close(raw * region, raw)
    # At input resolution, bilinear upsampling spreads the map by under one feature pixel.
    near_region = nn.functional.max_pool2d(region, 3, stride=1, padding=1)
    near_region = nn.functional.interpolate(near_region, size=(16, 16), mode="nearest")
    maps = igcam(x, 0)
    inside = (maps * near_region).sum(dim=(1, 2, 3)) / maps.sum(dim=(1, 2, 3))
    assert (inside > 0.999).all()


def test_create_graph_gives_parameter_gradients(cnn, images, labels):
    igcam = IntegratedGradCAM(cnn, n_steps=4, subtract_baseline=True, internal_batch_size=5)
    assert not igcam(images, labels).requires_grad
    igcam(images, labels, create_graph=True).sum().backward()
    for parameter in (cnn.block1[0].weight, cnn.fc.weight):
        assert parameter.grad is not None
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs", [{"n_steps": 0}, {"n_steps": 2.5}, {"internal_batch_size": 0}])
def test_invalid_settings_are_rejected(cnn, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        IntegratedGradCAM(cnn, **kwargs)
