"""Tiny models and inputs shared by the explainer tests. Keep this small and stable.

Fixtures:
    cnn: a ``CountingCNN`` (ReLU + BatchNorm, 5 classes, CAM layer ``block3``) in eval mode.
    make_cnn: factory ``make_cnn(fail_at=None, fail_in="forward")`` for fresh ``CountingCNN``s
        with identical weights; ``fail_at=k`` raises ``InjectedFailure`` at the k-th forward call
        (``fail_in="forward"``) or in the backward pass through that call's output
        (``fail_in="backward"``).
    smooth_cnn: a float64 ``SmoothCNN`` (Softplus/Tanh, so second derivatives are non-zero;
        CAM layer ``features``) for finite-difference checks.
    images: float32 images ``[3, 3, 16, 16]`` in [0, 1].
    labels: LongTensor ``[3]`` of classes in ``[0, NUM_CLASSES)``.
    check_parameter_gradients: ``check(explainer, x, target)`` asserts that the parameter
        gradients of a random linear loss on ``explainer(x, target, create_graph=True)`` are
        finite, not all zero, and equal central finite differences (use float64 models).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from explainaug.models import SmallCNN

NUM_CLASSES = 5
IMAGE_SIZE = 16
SEED = 1234


class InjectedFailure(RuntimeError):
    """The error a ``CountingCNN`` raises on purpose."""


class _FailInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx: object, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: Tensor) -> Tensor:
        raise InjectedFailure("injected failure in backward")


class CountingCNN(SmallCNN):
    """A width-4 ``SmallCNN`` that counts its forward calls and can fail at a chosen one."""

    def __init__(self, fail_at: int | None = None, fail_in: str = "forward") -> None:
        super().__init__(
            num_classes=NUM_CLASSES, width=4, mean=(0.5, 0.4, 0.3), std=(0.25, 0.2, 0.3)
        )
        if fail_in not in ("forward", "backward"):
            raise ValueError(f"fail_in must be 'forward' or 'backward', got {fail_in!r}")
        self.calls = 0
        self.fail_at = fail_at
        self.fail_in = fail_in
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                nn.init.uniform_(module.running_mean, -0.2, 0.2)
                nn.init.uniform_(module.running_var, 0.5, 1.5)
                nn.init.uniform_(module.weight, 0.5, 1.5)
                nn.init.uniform_(module.bias, -0.1, 0.1)

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        failing = self.calls == self.fail_at
        if failing and self.fail_in == "forward":
            raise InjectedFailure(f"injected failure in forward call {self.calls}")
        logits = super().forward(x)
        return _FailInBackward.apply(logits) if failing else logits


class SmoothCNN(nn.Module):
    """Conv-Softplus-Conv-Tanh, global average pool, linear; smooth everywhere."""

    default_cam_layer = "features"

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.Softplus(),
            nn.Conv2d(4, 6, 3, padding=1),
            nn.Tanh(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def _seeded(build: Callable[[], nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return build()


@pytest.fixture
def make_cnn() -> Callable[..., CountingCNN]:
    def make(fail_at: int | None = None, fail_in: str = "forward") -> CountingCNN:
        return _seeded(lambda: CountingCNN(fail_at, fail_in))

    return make


@pytest.fixture
def cnn(make_cnn: Callable[..., CountingCNN]) -> CountingCNN:
    return make_cnn().eval()


@pytest.fixture
def smooth_cnn() -> SmoothCNN:
    return _seeded(SmoothCNN).double().eval()


@pytest.fixture
def images() -> Tensor:
    generator = torch.Generator().manual_seed(SEED)
    return torch.rand(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)


@pytest.fixture
def labels() -> Tensor:
    return torch.tensor([0, 3, 1])


def _check_parameter_gradients(
    explainer: object, x: Tensor, target: Tensor, eps: float = 1e-6, rtol: float = 1e-5
) -> None:
    params = [p for p in explainer.model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(SEED)
    weights = torch.rand(explainer(x, target).shape, generator=generator, dtype=x.dtype)

    def loss(create_graph: bool) -> Tensor:
        return (explainer(x, target, create_graph=create_graph) * weights).sum()

    grads = torch.autograd.grad(loss(True), params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads, strict=False)]
    assert all(bool(torch.isfinite(g).all()) for g in grads)
    assert any(bool(g.abs().sum() > 0) for g in grads)
    for param, grad in zip(params, grads, strict=False):
        direction = torch.randn(param.shape, generator=generator, dtype=param.dtype)
        with torch.no_grad():
            param.add_(eps * direction)
            upper = loss(False)
            param.sub_(2 * eps * direction)
            lower = loss(False)
            param.add_(eps * direction)
        numeric = (upper - lower) / (2 * eps)
        analytic = (grad * direction).sum()
        tolerance = rtol * float(upper.abs()) + 1e-9
        assert torch.allclose(analytic, numeric, rtol=rtol, atol=tolerance), (
            f"parameter of shape {tuple(param.shape)}: autograd {float(analytic)}, "
            f"finite differences {float(numeric)}"
        )


@pytest.fixture
def check_parameter_gradients() -> Callable[..., None]:
    return _check_parameter_gradients
