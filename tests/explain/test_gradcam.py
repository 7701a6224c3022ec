"""GradCAM against Captum's LayerGradCam and pytorch-grad-cam, plus its own contract."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam
from pytorch_grad_cam import GradCAM as PytorchGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainaug.explain import GradCAM, minmax_normalize, upsample
from explainaug.models import resnet18


@pytest.fixture
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=5, width=4).eval()


def test_attribute_matches_captum_layer_gradcam(cnn, images, labels):
    ours = GradCAM(cnn, "block3").attribute(images, labels)
    theirs = LayerGradCam(cnn, cnn.block3).attribute(images, target=labels)
    assert ours.shape == (3, 1, 4, 4)
    assert (ours < 0).any(), "raw Grad-CAM should keep negative evidence (Captum's default)"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", ["layer3", "layer4.1", "normalize"])
def test_attribute_matches_captum_on_resnet_layers(resnet, layer):
    # "normalize" sees no parameter: the explainer must still build a graph to it.
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([1, 4])
    module = dict(resnet.named_modules())[layer]
    ours = GradCAM(resnet, layer).attribute(x, target)
    theirs = LayerGradCam(resnet, module).attribute(x, target=target)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_call_matches_captum_relu_and_bilinear_interpolate(cnn, images, labels):
    ours = GradCAM(cnn).__call__(images, labels)
    raw = LayerGradCam(cnn, cnn.block3).attribute(images, target=labels, relu_attributions=True)
    theirs = LayerAttribution.interpolate(raw, (16, 16), interpolate_mode="bilinear")
    assert ours.shape == (3, 1, 16, 16) and (ours >= 0).all()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_matches_pytorch_grad_cam_after_minmax(cnn, images, labels):
    # pytorch-grad-cam min-max normalises at layer resolution, then cv2.resize (INTER_LINEAR,
    # half-pixel centres, like torch's bilinear with align_corners=False). Bilinear resizing is
    # affine-equivariant, so min-max normalising both outputs at input resolution removes the
    # difference in where the normalisation happens; what remains is float32 rounding (and
    # their 1e-7 in the denominator). Its constructor calls model.eval(); the model already is.
    with PytorchGradCAM(model=cnn, target_layers=[cnn.block3]) as cam:
        theirs = cam(input_tensor=images, targets=[ClassifierOutputTarget(int(c)) for c in labels])
    theirs = minmax_normalize(torch.from_numpy(theirs)[:, None])
    ours = minmax_normalize(GradCAM(cnn)(images, labels))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)


def test_without_relu_shifts_the_signed_map_by_its_minimum(cnn, images, labels):
    cam = GradCAM(cnn, relu=False)
    maps = cam(images, labels)
    expected = upsample(cam.attribute(images, labels), (16, 16))
    expected = expected - expected.amin(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(maps, expected)
    assert torch.equal(maps.amin(dim=(2, 3)), torch.zeros(3, 1))
    # Same pixel order as min-max normalising Captum's non-ReLU'd, upsampled map (ExCon).
    raw = LayerGradCam(cnn, cnn.block3).attribute(images, target=labels)
    theirs = minmax_normalize(LayerAttribution.interpolate(raw, (16, 16), "bilinear"))
    torch.testing.assert_close(minmax_normalize(maps), theirs, rtol=1e-5, atol=1e-5)


def test_target_none_explains_the_predicted_class(cnn, images):
    cam = GradCAM(cnn)
    predicted = cnn(images).argmax(dim=1)
    torch.testing.assert_close(cam.attribute(images), cam.attribute(images, predicted))


def test_layer_as_module_or_name_is_the_same(cnn, images, labels):
    torch.testing.assert_close(
        GradCAM(cnn, cnn.block3).attribute(images, labels),
        GradCAM(cnn, "block3").attribute(images, labels),
    )


def test_unknown_layer_name_is_rejected(cnn):
    with pytest.raises(ValueError, match="unknown layer 'block9'"):
        GradCAM(cnn, "block9")


def test_layer_without_spatial_output_is_rejected(cnn, images):
    with pytest.raises(ValueError, match=r"layer 'fc' must output \[B, C, h, w\].*\(3, 5\)"):
        GradCAM(cnn, "fc")(images, 0)


def test_create_graph_gives_parameter_gradients(cnn, images, labels):
    cam = GradCAM(cnn)
    assert not cam(images, labels).requires_grad
    cam(images, labels, create_graph=True).sum().backward()
    # The map depends on parameters below the layer (activations) and above it (weights).
    for parameter in (cnn.block1[0].weight, cnn.fc.weight):
        assert parameter.grad is not None
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0
