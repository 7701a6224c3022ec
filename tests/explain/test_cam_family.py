"""Grad-CAM++, XGrad-CAM, HiResCAM, LayerCAM, Eigen-CAM and Score-CAM against their oracles.

pytorch-grad-cam is the oracle of the weights (its maps are compared after the same ReLU and a
per-image min-max at input resolution: bilinear resizing commutes with min-max, see
test_gradcam.py); the official Score-CAM code is transcribed as a per-channel loop.
"""

from __future__ import annotations

import pytest
import pytorch_grad_cam as pgc
import torch
import torch.nn.functional as F
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from pytorch_grad_cam.utils.svd_on_activations import (
    get_2d_projection,
    get_2d_projection_with_sign_correction,
)

from explainaug.explain import (
    EigenCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
    minmax_normalize,
)
from explainaug.explain.eigencam import first_component_projection
from explainaug.models import resnet18

PAIRS = {
    "gradcam++": (GradCAMPlusPlus, pgc.GradCAMPlusPlus),
    "xgradcam": (XGradCAM, pgc.XGradCAM),
    "hirescam": (HiResCAM, pgc.HiResCAM),
    "layercam": (LayerCAM, pgc.LayerCAM),
    "scorecam_pytorch_grad_cam": (
        lambda model, layer: ScoreCAM(
            model, layer, variant="pytorch-grad-cam", internal_batch_size=7
        ),
        pgc.ScoreCAM,
    ),
}


def pytorch_grad_cam_maps(cam_class, model, layer, x, target) -> torch.Tensor:
    with cam_class(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in target])
    return minmax_normalize(torch.from_numpy(maps)[:, None])


@pytest.fixture
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=5, width=4).eval()


@pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
def test_matches_pytorch_grad_cam_after_relu_and_minmax(pair, cnn, images, labels):
    ours_class, theirs_class = pair
    theirs = pytorch_grad_cam_maps(theirs_class, cnn, cnn.block3, images, labels)
    ours = minmax_normalize(ours_class(cnn, "block3")(images, labels))
    assert bool((theirs.amax(dim=(2, 3)) > 0.99).all()), "degenerate oracle maps"
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


@pytest.mark.parametrize("pair", PAIRS.values(), ids=PAIRS.keys())
@pytest.mark.parametrize("layer", ["layer3", "layer4"])
def test_matches_pytorch_grad_cam_on_resnet_layers(pair, layer, resnet):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([1, 4])
    ours_class, theirs_class = pair
    module = dict(resnet.named_modules())[layer]
    theirs = pytorch_grad_cam_maps(theirs_class, resnet, module, x, target)
    ours = minmax_normalize(ours_class(resnet, layer)(x, target))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


def test_gradcam_plusplus_weights_follow_equation_19_by_hand():
    # One channel of 2 pixels: A = [1, 3] (sum 4), g = [0.5, -1].
    # a_1 = 0.25 / (2 * 0.25 + 4 * 0.125 + 1e-6); the negative gradient gets no weight.
    activations = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2)
    gradients = torch.tensor([0.5, -1.0]).view(1, 1, 1, 2)
    weight = 0.5 * 0.25 / (0.5 + 0.5 + 1e-6)
    expected = weight * activations
    torch.testing.assert_close(GradCAMPlusPlus.combine(activations, gradients), expected)


def test_gradcam_plusplus_stays_finite_where_the_denominator_vanishes():
    # 2 g^2 + S g^3 = 0 at g = -2 / S: pytorch-grad-cam's 0 * inf would give NaN there.
    activations = torch.tensor([1.0, 3.0]).view(1, 1, 1, 2).requires_grad_()
    gradients = torch.tensor([0.5, -0.5]).view(1, 1, 1, 2).requires_grad_()
    cam = GradCAMPlusPlus.combine(activations, gradients)
    grads = torch.autograd.grad(cam.sum(), [activations, gradients])
    assert bool(torch.isfinite(cam).all()) and all(bool(torch.isfinite(g).all()) for g in grads)


@pytest.mark.parametrize("cam_class", [GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM, EigenCAM])
def test_parameter_gradients_match_finite_differences(
    cam_class, smooth_cnn, images, labels, check_parameter_gradients
):
    check_parameter_gradients(cam_class(smooth_cnn), images.double(), labels)


def test_eigencam_attribute_is_pytorch_grad_cams_projection_up_to_sign(cnn, images):
    cam = EigenCAM(cnn)
    activations = cam._forward(images)[1].detach()
    ours = cam.attribute(images)
    theirs = torch.from_numpy(get_2d_projection(activations.numpy()))[:, None]
    # Each image's projection is defined up to its sign.
    sign = torch.sign((ours * theirs).sum(dim=(1, 2, 3), keepdim=True))
    assert bool((sign != 0).all())
    torch.testing.assert_close(ours, sign * theirs, rtol=1e-4, atol=1e-5)


def test_eigencam_call_fixes_the_sign_as_seg_eigen_cam(cnn, images, labels):
    activations = EigenCAM(cnn)._forward(images)[1].detach()
    corrected = get_2d_projection_with_sign_correction(activations.numpy())
    theirs = F.interpolate(
        torch.from_numpy(corrected)[:, None].clamp_min(0), size=(16, 16), mode="bilinear"
    )
    ours = EigenCAM(cnn)(images, labels)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # Class-agnostic: every target gives the same map.
    torch.testing.assert_close(EigenCAM(cnn)(images, 0), ours)


def test_eigencam_gradient_is_finite_with_dead_channels():
    # Three dead channels give tied zero singular values: torch.linalg.svd's backward is NaN.
    generator = torch.Generator().manual_seed(0)
    live = torch.randn(2, 3, 4, 4, generator=generator, dtype=torch.float64)
    activations = torch.cat([live, torch.zeros(2, 3, 4, 4, dtype=torch.float64)], dim=1)
    activations.requires_grad_()
    weights = torch.rand(2, 1, 4, 4, generator=generator, dtype=torch.float64)

    def squared(a: torch.Tensor) -> torch.Tensor:  # sign-free, so differentiable
        return first_component_projection(a).square() * weights

    assert torch.autograd.gradcheck(squared, (activations,))


def official_scorecam(model, x, target, layer) -> torch.Tensor:
    """The authors' Score-CAM loop (haofanwang/Score-CAM), one image and channel at a time.

    One change: a channel is skipped when its map is constant *before* upsampling. The official
    check runs after it, where rounding can make a constant map vary by an ulp, and min-max then
    turns that rounding noise into a full mask.
    """
    maps = []
    for image, label in zip(x, target, strict=True):
        image = image[None]
        with torch.no_grad():
            activations = EigenCAM(model, layer)._forward(image)[1]
            saliency = torch.zeros(1, 1, *x.shape[2:])
            for channel in range(activations.shape[1]):
                low_resolution = activations[:, channel : channel + 1]
                if low_resolution.max() == low_resolution.min():
                    continue
                upsampled = F.interpolate(low_resolution, size=x.shape[2:], mode="bilinear")
                norm = (upsampled - upsampled.min()) / (upsampled.max() - upsampled.min())
                score = F.softmax(model(image * norm), dim=1)[0, label]
                saliency += score * upsampled
        maps.append(saliency)
    return torch.cat(maps)


def test_scorecam_paper_variant_equals_the_official_loop(cnn, images, labels):
    ours = ScoreCAM(cnn, internal_batch_size=5).attribute(images, labels)
    theirs = official_scorecam(cnn, images, labels, "block3")
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ScoreCAM(cnn)(images, labels), theirs.relu())


def test_scorecam_skips_constant_channels(cnn, images, labels):
    # Zero a channel's convolution and shift its BatchNorm: a constant map of about 10. Scored,
    # it would add about 10 * score to every pixel.
    with torch.no_grad():
        cnn.block3[0].weight[0].zero_()
        cnn.block3[1].bias[0] = 10.0
    activations = EigenCAM(cnn)._forward(images)[1][:, 0]
    assert bool((activations > 5).all()) and bool((activations == activations[:, :1, :1]).all())
    torch.testing.assert_close(
        ScoreCAM(cnn).attribute(images, labels), official_scorecam(cnn, images, labels, "block3")
    )


@pytest.mark.parametrize("variant", ["paper", "pytorch-grad-cam"])
def test_scorecam_chunking_does_not_change_the_maps(cnn, images, labels, variant):
    one = ScoreCAM(cnn, variant=variant, internal_batch_size=1).attribute(images, labels)
    many = ScoreCAM(cnn, variant=variant, internal_batch_size=1000).attribute(images, labels)
    torch.testing.assert_close(one, many)


def test_scorecam_rejects_an_unknown_variant(cnn):
    with pytest.raises(ValueError, match=r"variant must be one of .*got 'grad'"):
        ScoreCAM(cnn, variant="grad")
