"""Saliency and InputXGradient against Captum, and their differentiability."""

import pytest
import torch
from captum.attr import InputXGradient as CaptumInputXGradient
from captum.attr import Saliency as CaptumSaliency

from explainaug.explain import InputXGradient, Saliency


def assert_close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.detach()
    scale = float(theirs.abs().max())
    assert scale > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("use_abs", [True, False])
def test_saliency_matches_captum(cnn, images, labels, use_abs):
    ours = Saliency(cnn, abs=use_abs).attribute(images, labels)
    theirs = CaptumSaliency(cnn).attribute(images, target=labels, abs=use_abs)
    assert_close(ours, theirs)


def test_saliency_signed_has_both_signs_and_abs_is_its_magnitude(cnn, images, labels):
    signed = Saliency(cnn, abs=False).attribute(images, labels)
    assert bool((signed < 0).any()) and bool((signed > 0).any())
    torch.testing.assert_close(Saliency(cnn).attribute(images, labels), signed.abs())


def test_input_x_gradient_matches_captum(cnn, images, labels):
    ours = InputXGradient(cnn).attribute(images, labels)
    theirs = CaptumInputXGradient(cnn).attribute(images, target=labels)
    assert_close(ours, theirs)


def test_maps_are_channel_sums_of_absolute_attributions(cnn, images, labels):
    explainer = InputXGradient(cnn)
    raw = explainer.attribute(images, labels)
    torch.testing.assert_close(explainer(images, labels), raw.abs().sum(dim=1, keepdim=True))


def test_default_target_is_the_predicted_class(cnn, images):
    predicted = cnn(images).argmax(dim=1)
    theirs = CaptumSaliency(cnn).attribute(images, target=predicted)
    assert_close(Saliency(cnn).attribute(images), theirs)


def test_results_are_detached_without_create_graph(cnn, images, labels):
    assert not Saliency(cnn)(images, labels).requires_grad
    assert InputXGradient(cnn)(images, labels, create_graph=True).requires_grad


@pytest.mark.parametrize(
    "make",
    [lambda m: Saliency(m, abs=False), Saliency, InputXGradient],
    ids=["saliency_signed", "saliency_abs", "input_x_gradient"],
)
def test_create_graph_maps_have_finite_difference_parameter_gradients(
    smooth_cnn, images, labels, check_parameter_gradients, make
):
    check_parameter_gradients(make(smooth_cnn), images.double(), labels)


def test_create_graph_keeps_the_history_of_inputs_that_require_grad(smooth_cnn, images, labels):
    scale = torch.ones(1, dtype=torch.float64, requires_grad=True)
    x = images.double() * scale
    maps = InputXGradient(smooth_cnn)(x, labels, create_graph=True)
    (grad,) = torch.autograd.grad(maps.sum(), scale)
    assert bool(torch.isfinite(grad).all()) and float(grad.abs()) > 0
