"""IntegratedGradients against Captum, completeness, chunking and differentiability."""

import pytest
import torch
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from captum.attr._utils.approximation_methods import approximation_parameters

from explainaug.explain import IntegratedGradients
from explainaug.explain.integrated_gradients import METHODS, quadrature


def assert_close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    theirs = theirs.detach()
    scale = float(theirs.abs().max())
    assert scale > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_steps", [2, 7])
def test_quadrature_matches_captum(method, n_steps):
    step_sizes, alphas = approximation_parameters(method)
    ours_alphas, ours_weights = quadrature(method, n_steps)
    torch.testing.assert_close(ours_alphas, torch.tensor(alphas(n_steps), dtype=torch.float64))
    torch.testing.assert_close(ours_weights, torch.tensor(step_sizes(n_steps), dtype=torch.float64))


@pytest.mark.parametrize(
    ("method", "n_steps"),
    [
        ("gausslegendre", 50),
        ("gausslegendre", 5),
        ("riemann_left", 6),
        ("riemann_right", 6),
        ("riemann_middle", 9),
        ("riemann_trapezoid", 9),
    ],
)
def test_attributions_match_captum(cnn, images, labels, method, n_steps):
    ours = IntegratedGradients(cnn, n_steps=n_steps, method=method).attribute(images, labels)
    theirs = CaptumIntegratedGradients(cnn).attribute(
        images, target=labels, n_steps=n_steps, method=method
    )
    assert_close(ours, theirs)


@pytest.mark.parametrize("internal_batch_size", [1, 4, 7, 15])
def test_chunking_matches_captum(cnn, images, labels, internal_batch_size):
    # 3 images x 5 steps: chunks of 4 and 7 cut across image boundaries.
    ours = IntegratedGradients(cnn, n_steps=5, internal_batch_size=internal_batch_size)
    theirs = CaptumIntegratedGradients(cnn).attribute(
        images, target=labels, n_steps=5, internal_batch_size=6
    )
    assert_close(ours.attribute(images, labels), theirs)


def test_chunks_bound_the_forward_batch(make_cnn, images, labels):
    model = make_cnn().eval()
    sizes = []
    handle = model.register_forward_pre_hook(lambda _m, inputs: sizes.append(inputs[0].shape[0]))
    try:
        IntegratedGradients(model, n_steps=5, internal_batch_size=4).attribute(images, labels)
    finally:
        handle.remove()
    assert sizes == [4, 4, 4, 3]


@pytest.mark.parametrize(
    "baselines", [0.5, torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)], ids=["float", "per_channel"]
)
def test_baselines_match_captum(cnn, images, labels, baselines):
    ours = IntegratedGradients(cnn, baselines=baselines, n_steps=8).attribute(images, labels)
    expanded = torch.as_tensor(baselines, dtype=images.dtype).expand_as(images)
    theirs = CaptumIntegratedGradients(cnn).attribute(
        images, baselines=expanded, target=labels, n_steps=8
    )
    assert_close(ours, theirs)


def test_default_target_is_the_predicted_class(cnn, images):
    predicted = cnn(images).argmax(dim=1)
    ig = IntegratedGradients(cnn, n_steps=6)
    torch.testing.assert_close(ig.attribute(images), ig.attribute(images, predicted))


def test_completeness_error_shrinks_with_steps(smooth_cnn, images, labels):
    x = images.double()
    errors = []
    for n_steps in (4, 16, 64):
        ig = IntegratedGradients(smooth_cnn, n_steps=n_steps, method="riemann_middle")
        errors.append(ig.convergence_delta(x, ig.attribute(x, labels), labels).abs().max())
    assert errors[0] > errors[1] > errors[2]
    # The midpoint rule's error falls as 1/n^2: 16x fewer errors for 4x more steps.
    assert float(errors[2]) < float(errors[1]) / 8


def test_completeness_holds_with_gauss_legendre(smooth_cnn, images, labels):
    x = images.double()
    baseline = torch.full_like(x[:1], 0.3)
    ig = IntegratedGradients(smooth_cnn, baselines=baseline, n_steps=20)
    attributions = ig.attribute(x, labels)
    logits = smooth_cnn(torch.cat([x, baseline])).detach()
    gain = logits[:3].gather(1, labels[:, None]).squeeze(1) - logits[3, labels]
    assert float(gain.abs().min()) > 1e-4
    torch.testing.assert_close(attributions.flatten(1).sum(dim=1), gain, rtol=1e-9, atol=1e-12)
    assert float(ig.convergence_delta(x, attributions, labels).abs().max()) < 1e-10


def test_convergence_delta_matches_captum(cnn, images, labels):
    ig = IntegratedGradients(cnn, n_steps=10, method="riemann_trapezoid")
    ours = ig.convergence_delta(images, ig.attribute(images, labels), labels)
    _, theirs = CaptumIntegratedGradients(cnn).attribute(
        images, target=labels, n_steps=10, method="riemann_trapezoid", return_convergence_delta=True
    )
    torch.testing.assert_close(ours, theirs.to(ours.dtype), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("internal_batch_size", [None, 4])
def test_create_graph_maps_have_finite_difference_parameter_gradients(
    smooth_cnn, images, labels, check_parameter_gradients, internal_batch_size
):
    ig = IntegratedGradients(smooth_cnn, n_steps=4, internal_batch_size=internal_batch_size)
    check_parameter_gradients(ig, images.double(), labels)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"method": "simpson"}, ValueError, "method must be one of"),
        (
            {"n_steps": 1, "method": "riemann_left"},
            ValueError,
            "n_steps for riemann_left must be an int >= 2",
        ),
        ({"n_steps": 0}, ValueError, "n_steps for gausslegendre must be an int >= 1"),
        ({"n_steps": 2.0}, ValueError, "n_steps for gausslegendre must be an int"),
        ({"internal_batch_size": 0}, ValueError, "internal_batch_size must be None or an int >= 1"),
        ({"baselines": "zeros"}, TypeError, "baselines must be None, a float or a tensor"),
        ({"baselines": torch.tensor([float("nan")])}, ValueError, "baselines contain NaN"),
    ],
)
def test_bad_arguments_are_rejected(cnn, kwargs, error, match):
    with pytest.raises(error, match=match):
        IntegratedGradients(cnn, **kwargs)


def test_baselines_that_do_not_broadcast_are_rejected(cnn, images, labels):
    ig = IntegratedGradients(cnn, baselines=torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"do not broadcast to the images' shape \(3, 3, 16, 16\)"):
        ig.attribute(images, labels)


def test_convergence_delta_rejects_attributions_of_another_shape(cnn, images, labels):
    with pytest.raises(ValueError, match="attributions must have the images' shape"):
        IntegratedGradients(cnn).convergence_delta(images, images[:, :1], labels)


@pytest.mark.gpu
def test_cuda_matches_cpu(cnn, images, labels):
    ig = IntegratedGradients(cnn, n_steps=8, internal_batch_size=10)
    on_cpu = ig.attribute(images, labels)
    on_gpu = IntegratedGradients(cnn.cuda(), n_steps=8, internal_batch_size=10).attribute(
        images.cuda(), labels.cuda()
    )
    assert_close(on_gpu.cpu(), on_cpu)
