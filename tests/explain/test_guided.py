"""GuidedBackprop and GuidedGradCAM against Captum; model-state guarantees of the CAM family."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from captum.attr import GuidedGradCam as CaptumGuidedGradCam
from torch import nn

from explainaug.explain import (
    Explainer,
    GradCAM,
    GuidedBackprop,
    GuidedGradCAM,
    IntegratedGradCAM,
)
from explainaug.models import resnet18


@pytest.fixture
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return resnet18(num_classes=5, width=4).eval()


def _gradient(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return grad


def test_guided_backprop_matches_captum(cnn, images, labels):
    ours = GuidedBackprop(cnn).attribute(images, labels)
    theirs = CaptumGuidedBackprop(cnn).attribute(images, target=labels)
    assert not torch.allclose(ours, _gradient(cnn, images, labels)), "guidance had no effect"
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_guided_backprop_matches_captum_on_resnet(resnet):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([2, 0])
    ours = GuidedBackprop(resnet).attribute(x, target)
    theirs = CaptumGuidedBackprop(resnet).attribute(x, target=target)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_guided_backprop_map_is_channel_sum_of_absolute_attribution(cnn, images, labels):
    gbp = GuidedBackprop(cnn)
    expected = gbp.attribute(images, labels).abs().sum(dim=1, keepdim=True)
    torch.testing.assert_close(gbp(images, labels), expected)


class _FunctionalReluNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).flatten(1))


def test_functional_relu_is_not_guided_as_in_captum():
    torch.manual_seed(0)
    model, x, target = _FunctionalReluNet(), torch.rand(2, 3, 8, 8), torch.tensor([0, 2])
    ours = GuidedBackprop(model).attribute(x, target)
    torch.testing.assert_close(ours, _gradient(model, x, target))
    torch.testing.assert_close(ours, CaptumGuidedBackprop(model).attribute(x, target=target))


class _ReluNet(nn.Module):
    """conv-ReLU-conv-ReLU-linear; ``shared=True`` calls one ReLU module twice."""

    def __init__(self, shared: bool) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.relu2 = self.relu1 if shared else nn.ReLU()
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(x)))).flatten(1))


def test_relu_module_called_twice_is_guided_at_every_call():
    torch.manual_seed(0)
    separate = _ReluNet(shared=False)
    shared = _ReluNet(shared=True)
    shared.load_state_dict(separate.state_dict())
    x, target = torch.rand(2, 3, 8, 8), torch.tensor([1, 2])
    expected = CaptumGuidedBackprop(separate).attribute(x, target=target)
    torch.testing.assert_close(GuidedBackprop(shared).attribute(x, target), expected)


def test_guided_gradcam_matches_captum(cnn, images, labels):
    ours = GuidedGradCAM(cnn, "block3").attribute(images, labels)
    theirs = CaptumGuidedGradCam(cnn, cnn.block3).attribute(images, target=labels)
    assert ours.abs().sum() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_guided_gradcam_matches_captum_on_resnet(resnet):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    ours = GuidedGradCAM(resnet, "layer3").attribute(x)  # target None: the predicted class
    theirs = CaptumGuidedGradCam(resnet, resnet.layer3).attribute(x, target=resnet(x).argmax(1))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("explainer_type", [GuidedBackprop, GuidedGradCAM])
def test_create_graph_gives_parameter_gradients(explainer_type, cnn, images, labels):
    explainer_type(cnn)(images, labels, create_graph=True).sum().backward()
    for parameter in (cnn.block1[0].weight, cnn.block3[0].weight, cnn.fc.weight):
        assert parameter.grad is not None
        assert torch.isfinite(parameter.grad).all() and parameter.grad.abs().sum() > 0


# Model-state guarantees, for every explainer of the CAM family. Failures are injected after
# the hooks are in place: an out-of-range target (checked after the forward pass), an error in
# the forward pass and one in the backward pass.

EXPLAINERS: dict[str, Callable[[nn.Module], Explainer]] = {
    "gradcam": GradCAM,
    "guided_backprop": GuidedBackprop,
    "guided_gradcam": GuidedGradCAM,
    "integrated_gradcam": lambda model: IntegratedGradCAM(
        model, n_steps=3, subtract_baseline=True, internal_batch_size=4
    ),
}


def _state(model: nn.Module) -> tuple[list[bool], dict[str, torch.Tensor], list[bool]]:
    modes = [module.training for module in model.modules()]
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    flags = [parameter.requires_grad for parameter in model.parameters()]
    return modes, buffers, flags


def _assert_unchanged(model: nn.Module, before: tuple) -> None:
    modes, buffers, flags = _state(model)
    assert modes == before[0]
    assert buffers.keys() == before[1].keys()
    assert all(torch.equal(buffers[name], before[1][name]) for name in buffers)
    assert flags == before[2]
    assert all(parameter.grad is None for parameter in model.parameters())
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks and not module._backward_pre_hooks


@pytest.mark.parametrize("name", EXPLAINERS)
def test_train_mode_model_is_left_as_found(name, make_cnn, images, labels):
    model = make_cnn().train()
    model.block2[0].weight.requires_grad_(False)
    before = _state(model)
    maps = EXPLAINERS[name](model)(images, labels)
    assert maps.shape == (3, 1, 16, 16) and (maps >= 0).all() and maps.sum() > 0
    _assert_unchanged(model, before)


@pytest.mark.parametrize("name", EXPLAINERS)
def test_hooks_and_state_restored_after_out_of_range_target(name, make_cnn, images):
    model = make_cnn().train()
    before = _state(model)
    with pytest.raises(ValueError, match=r"target must lie in \[0, 4\]"):
        EXPLAINERS[name](model)(images, torch.tensor([0, 1, 5]))
    _assert_unchanged(model, before)


# (explainer, forward call that fails, where). The CAMs' first forward call is the probe that
# checks their default layer (no backward); GuidedGradCAM's third is the guided pass, with hooks
# on every ReLU; IntegratedGradCAM's second is the baseline, then one per chunk.
FAILURES = [
    ("gradcam", 1, "forward"),
    ("gradcam", 2, "forward"),
    ("gradcam", 2, "backward"),
    ("guided_backprop", 1, "forward"),
    ("guided_backprop", 1, "backward"),
    ("guided_gradcam", 1, "forward"),
    ("guided_gradcam", 2, "forward"),
    ("guided_gradcam", 2, "backward"),
    ("guided_gradcam", 3, "forward"),
    ("guided_gradcam", 3, "backward"),
    ("integrated_gradcam", 2, "forward"),
    ("integrated_gradcam", 3, "forward"),
    ("integrated_gradcam", 4, "backward"),
]


@pytest.mark.parametrize(("name", "fail_at", "fail_in"), FAILURES)
def test_hooks_and_state_restored_after_failure_midway(
    name, fail_at, fail_in, make_cnn, images, labels
):
    model = make_cnn(fail_at=fail_at, fail_in=fail_in).train()
    before = _state(model)
    with pytest.raises(RuntimeError, match="injected failure"):
        EXPLAINERS[name](model)(images, labels)
    _assert_unchanged(model, before)
