"""The contract every explainer keeps: model state, output maps, targets and input errors.

Add each explainer of the package to ``EXPLAINERS`` as ``name: factory(model)``. The model is a
``CountingCNN`` from ``conftest.py`` (a width-4 ``SmallCNN`` with ``default_cam_layer``). Factories
must be deterministic (seed stochastic methods). For the failure tests the explainer must
backpropagate through its first forward pass when the target is given.
"""

from collections.abc import Callable

import pytest
import torch
from torch import nn

from explainaug.explain import (
    RISE,
    SISE,
    AdaSISE,
    EigenCAM,
    Explainer,
    GradCAM,
    GradCAMPlusPlus,
    GuidedBackprop,
    GuidedGradCAM,
    HiResCAM,
    InputXGradient,
    IntegratedGradCAM,
    IntegratedGradients,
    LayerCAM,
    Occlusion,
    Saliency,
    ScoreCAM,
    SmoothGrad,
    XGradCAM,
)

NUM_CLASSES = 5  # outputs of conftest's CountingCNN

EXPLAINERS: dict[str, Callable[[nn.Module], Explainer]] = {
    "saliency": Saliency,
    "saliency_signed": lambda model: Saliency(model, abs=False),
    "input_x_gradient": InputXGradient,
    "integrated_gradients": lambda model: IntegratedGradients(model, n_steps=4),
    "integrated_gradients_chunked": lambda model: IntegratedGradients(
        model, n_steps=3, method="riemann_trapezoid", internal_batch_size=4
    ),
    "smoothgrad": lambda model: SmoothGrad(Saliency(model), nt_samples=3, seed=0),
    "vargrad_of_integrated_gradients": lambda model: SmoothGrad(
        IntegratedGradients(model, n_steps=2),
        nt_samples=2,
        nt_type="vargrad",
        internal_batch_size=4,
        seed=0,
    ),
    "guided_backprop": GuidedBackprop,
    "gradcam": GradCAM,
    "gradcam_no_relu": lambda model: GradCAM(model, layer="block2", relu=False),
    "guided_gradcam": GuidedGradCAM,
    "integrated_gradcam": lambda model: IntegratedGradCAM(model, n_steps=3, internal_batch_size=4),
    "smoothgrad_of_gradcam": lambda model: SmoothGrad(GradCAM(model), nt_samples=2, seed=0),
    "sise": lambda model: SISE(model, layers=SISE_LAYERS, internal_batch_size=8),
    "sise_auto_layers": lambda model: SISE(model, internal_batch_size=8),
    "ada_sise": lambda model: AdaSISE(
        model, layers=SISE_LAYERS, fusion="binary", internal_batch_size=8
    ),
    "gradcam_plusplus": GradCAMPlusPlus,
    "xgradcam": lambda model: XGradCAM(model, layer="block2"),
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "scorecam": lambda model: ScoreCAM(model, internal_batch_size=8),
    "scorecam_pytorch_grad_cam": lambda model: ScoreCAM(
        model, variant="pytorch-grad-cam", internal_batch_size=8
    ),
    "rise": lambda model: RISE(model, n_masks=8, seed=0, internal_batch_size=8),
    "occlusion": lambda model: Occlusion(model, window=8, stride=4, internal_batch_size=8),
}
SISE_LAYERS = ["block1", "block2", "block3"]
# Perturbation methods score masked images without a graph: create_graph=True is refused.
PERTURBATION = {"scorecam", "scorecam_pytorch_grad_cam", "rise", "occlusion"}
NOT_DIFFERENTIABLE = {"sise", "sise_auto_layers", "ada_sise", *PERTURBATION}
# CAMs on their default layer: one probe forward (no graph) checks the layer on the first call.
DEFAULT_LAYER_CAMS = {
    "gradcam",
    "guided_gradcam",
    "integrated_gradcam",
    "smoothgrad_of_gradcam",
    "gradcam_plusplus",
    "hirescam",
    "layercam",
}
# These run no backward through their first forward: the automatic layer choice probes first,
# the others never backpropagate; a backward failure is injected in their last forward instead.
NO_FIRST_BACKWARD = {"sise_auto_layers", "eigencam", *DEFAULT_LAYER_CAMS, *PERTURBATION}

HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
GLOBAL_HOOK_DICTS = (
    "_global_forward_hooks",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
    "_global_forward_hooks_always_called",
)

explainers = pytest.mark.parametrize("make_explainer", EXPLAINERS.values(), ids=EXPLAINERS.keys())


# The contract holds on every device and in every dtype (see tests/conftest.py): the
# conftest's models and inputs, moved.
@pytest.fixture
def make_cnn(make_cnn, device, dtype):
    def make(*args, **kwargs):
        return make_cnn(*args, **kwargs).to(device=device, dtype=dtype)

    return make


@pytest.fixture
def cnn(make_cnn):
    return make_cnn().eval()


@pytest.fixture
def images(images, device, dtype):
    return images.to(device=device, dtype=dtype)


@pytest.fixture
def labels(labels, device):
    return labels.to(device)


def explainer_name(request: pytest.FixtureRequest) -> str:
    """The ``EXPLAINERS`` key of the running parametrised test."""
    factory = request.node.callspec.params["make_explainer"]
    return next(name for name, candidate in EXPLAINERS.items() if candidate is factory)


def prepare(model: nn.Module) -> nn.Module:
    """Train mode with one block in eval mode and one block frozen: every flag has both values."""
    model.train()
    model.block2.eval()
    model.block1.requires_grad_(False)
    return model


def snapshot(model: nn.Module) -> dict:
    globals_ = nn.modules.module.__dict__
    return {
        "training": {name: m.training for name, m in model.named_modules()},
        "requires_grad": {name: p.requires_grad for name, p in model.named_parameters()},
        "grad": {name: p.grad for name, p in model.named_parameters()},
        "tensor_hooks": {
            name: len(p._backward_hooks or {}) for name, p in model.named_parameters()
        },
        "identity": {
            name: id(t) for name, t in [*model.named_parameters(), *model.named_buffers()]
        },
        "values": {name: t.detach().clone() for name, t in model.state_dict().items()},
        "hooks": {
            (name, key): len(getattr(m, key))
            for name, m in model.named_modules()
            for key in HOOK_DICTS
            if hasattr(m, key)
        },
        "global_hooks": {key: len(globals_[key]) for key in GLOBAL_HOOK_DICTS if key in globals_},
    }


def assert_unchanged(before: dict, after: dict) -> None:
    for key in ("training", "requires_grad", "tensor_hooks", "identity", "hooks", "global_hooks"):
        assert after[key] == before[key], key
    assert all(grad is None for grad in after["grad"].values()), "parameter .grad was written"
    changed = [
        name
        for name, value in before["values"].items()
        if not torch.equal(value, after["values"][name])
    ]
    assert not changed, f"state changed: {changed}"


@explainers
def test_model_state_is_unchanged_by_calls(make_explainer, make_cnn, images, labels, request):
    model = prepare(make_cnn())
    before = snapshot(model)
    explainer = make_explainer(model)
    explainer(images, labels)
    explainer(images)
    if explainer_name(request) not in NOT_DIFFERENTIABLE:
        explainer(images, labels, create_graph=True).sum()
    explainer.attribute(images, labels)
    assert_unchanged(before, snapshot(model))


@explainers
@pytest.mark.parametrize("failure", ["first_forward", "last_forward", "first_backward"])
def test_model_state_is_restored_after_an_exception(
    make_explainer, make_cnn, images, labels, failure, request
):
    if failure == "first_backward" and explainer_name(request) in NO_FIRST_BACKWARD:
        failure = "last_forward"  # its first forward is the probe; its backward comes later
    counting = make_cnn()
    make_explainer(prepare(counting))(images, labels)
    fail_at = counting.calls if failure == "last_forward" else 1
    model = prepare(make_cnn(fail_at=fail_at, fail_in=failure.split("_")[1]))
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="injected failure"):
        make_explainer(model)(images, labels)
    assert_unchanged(before, snapshot(model))


@explainers
def test_maps_are_non_negative_finite_and_input_sized(make_explainer, cnn, images, labels):
    maps = make_explainer(cnn)(images, labels)
    assert maps.shape == (images.shape[0], 1, *images.shape[2:])
    assert maps.dtype == images.dtype
    assert bool(torch.isfinite(maps).all()) and bool((maps >= 0).all())
    assert bool((maps > 0).any())


@explainers
def test_create_graph_maps_are_differentiable_and_others_detached(
    make_explainer, cnn, images, labels, request
):
    explainer = make_explainer(cnn)
    assert not explainer(images, labels).requires_grad
    assert not explainer.attribute(images, labels).requires_grad
    if explainer_name(request) in NOT_DIFFERENTIABLE:
        with pytest.raises(ValueError, match="not differentiable"):
            explainer(images, labels, create_graph=True)
        return
    maps = explainer(images, labels, create_graph=True)
    grads = torch.autograd.grad(maps.sum(), [p for p in cnn.parameters()], allow_unused=True)
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads)
    torch.testing.assert_close(maps.detach(), explainer(images, labels))


@explainers
def test_target_forms_agree(make_explainer, cnn, images):
    explainer = make_explainer(cnn)
    predicted = cnn(images).argmax(dim=1)
    torch.testing.assert_close(explainer(images), explainer(images, predicted))
    by_int = explainer(images, 2)
    torch.testing.assert_close(by_int, explainer(images, torch.full((3,), 2)))
    torch.testing.assert_close(by_int, explainer(images, torch.tensor(2)))
    torch.testing.assert_close(by_int, explainer(images, torch.full((3,), 2, dtype=torch.int32)))


def _with(images: torch.Tensor, index: tuple, value: float) -> torch.Tensor:
    images = images.clone()
    images[index] = value
    return images


BAD_INPUTS = {
    "3d_images": (lambda x, y: (x[0], y[0]), ValueError, r"shape \[B, C, H, W\] \(4 dims\)"),
    "integer_images": (lambda x, y: ((x * 255).long(), y), TypeError, "floating-point"),
    "channels_last_images": (
        lambda x, y: (x.permute(0, 2, 3, 1), y),
        ValueError,
        r"looks channels-last \[B, H, W, C\]",
    ),
    "list_images": (lambda x, y: (x.tolist(), y), TypeError, "must be a torch.Tensor"),
    "nan_images": (lambda x, y: (_with(x, (1, 0, 3, 3), float("nan")), y), ValueError, "NaN"),
    "inf_images": (lambda x, y: (_with(x, (0, 2, 0, 0), float("inf")), y), ValueError, "infinite"),
    "batch_mismatch": (lambda x, y: (x, y[:2]), ValueError, r"shape \[3\] to match the batch"),
    "target_too_large": (
        lambda x, y: (x, NUM_CLASSES),
        ValueError,
        rf"must lie in \[0, {NUM_CLASSES - 1}\]",
    ),
    "tensor_target_too_large": (
        lambda x, y: (x, torch.tensor([0, 99, 1], device=x.device)),
        ValueError,
        r"got values in \[0, 99\]",
    ),
    "negative_target": (lambda x, y: (x, -1), ValueError, "target must be >= 0"),
    "float_tensor_target": (lambda x, y: (x, y.float()), TypeError, "integer class indices"),
    "float_target": (lambda x, y: (x, 1.0), TypeError, "int, a LongTensor"),
}


@explainers
@pytest.mark.parametrize("bad_input", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_raises_a_clear_error(make_explainer, make_cnn, images, labels, bad_input):
    make_bad, error, match = bad_input
    model = prepare(make_cnn())
    before = snapshot(model)
    x, target = make_bad(images, labels)
    with pytest.raises(error, match=match):
        make_explainer(model)(x, target)
    assert_unchanged(before, snapshot(model))


@pytest.mark.parametrize("name", ["saliency", "gradcam", "integratedgradients"])
def test_images_of_another_dtype_than_the_model_are_a_type_error(name):
    from explainaug.explain import build_explainer
    from explainaug.models import SmallCNN

    explainer = build_explainer(name, SmallCNN(num_classes=3, width=4).eval())
    with pytest.raises(TypeError, match="dtype torch.float64 but the model's parameters are"):
        explainer(torch.rand(2, 3, 8, 8, dtype=torch.float64), target=0)


def test_inference_mode_gets_a_clear_error() -> None:
    """Explanations need gradients: torch.inference_mode() (and tensors made under it) cannot
    give them; say so instead of torch's 'element 0 of tensors does not require grad'."""
    from explainaug.models import SmallCNN

    model = SmallCNN(num_classes=3, width=4).eval()
    explainer = GradCAM(model)
    with torch.inference_mode():
        x = torch.rand(2, 3, 16, 16)
        with pytest.raises(RuntimeError, match=r"explainers need gradients.*inference_mode"):
            explainer(x, 0)
    with pytest.raises(ValueError, match=r"x is an inference tensor.*x\.clone\(\)"):
        explainer(x, 0)
    assert explainer(x.clone(), 0).shape == (2, 1, 16, 16)


@pytest.mark.parametrize("name", ["rise", "occlusion", "scorecam", "eigencam"])
def test_gradient_free_explainers_still_run_under_inference_mode(name) -> None:
    from explainaug.explain import build_explainer
    from explainaug.models import SmallCNN

    explainer = build_explainer(name, SmallCNN(num_classes=3, width=4).eval())
    with torch.inference_mode():
        maps = explainer(torch.rand(2, 3, 16, 16), 0)
    assert maps.shape == (2, 1, 16, 16) and torch.isfinite(maps).all()
