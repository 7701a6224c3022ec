"""Contextual decomposition: rel + irrel is the model's eval-mode logits; the official rules by
hand; every unsupported layer is named."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from explainaug.explain.decomposition import ContextualDecomposition
from explainaug.models import SmallCNN


def _with_statistics(model: nn.Module, size: int) -> nn.Module:
    """``model`` with BatchNorm running statistics and affine parameters away from their
    initial values (so folding them is tested), in train mode."""
    generator = torch.Generator().manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, size, size, generator=generator))
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.3, 0.3, generator=generator)
    return model


MODELS = {
    "small-cnn": lambda: SmallCNN(
        num_classes=5, width=8, mean=(0.5, 0.4, 0.3), std=(0.2, 0.3, 0.25)
    ),
    "torchvision-resnet18": lambda: torchvision.models.resnet18(num_classes=7),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_rel_plus_irrel_is_the_eval_logits_and_the_model_is_untouched(name: str) -> None:
    torch.manual_seed(0)
    size = 32
    model = _with_statistics(MODELS[name](), size)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    x = torch.rand(4, 3, size, size)
    cd = ContextualDecomposition(model)
    for mask in (
        (torch.rand(4, 1, size, size) > 0.5).float(),
        torch.rand(4, 3, size, size),  # soft, per channel
        (torch.rand(1, 1, size, size) > 0.9),  # bool, one mask for the batch
    ):
        rel, irrel = cd(x, mask)
        assert model.training  # left in train mode
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), key  # running statistics unchanged
        logits = model.eval()(x)
        model.train()
        torch.testing.assert_close(rel + irrel, logits, atol=2e-5, rtol=1e-4)
        assert rel.abs().max() > 1e-3 and irrel.abs().max() > 1e-3  # both streams carry something


@pytest.mark.parametrize("name", list(MODELS))
def test_whole_image_relevant_or_irrelevant(name: str) -> None:
    """All-ones mask: irrel gets no input and, the biases going with the non-zero stream, stays
    0; all-zeros mask: rel is exactly 0 and irrel is the logits."""
    torch.manual_seed(1)
    model = _with_statistics(MODELS[name](), 32).eval()
    x = torch.rand(3, 3, 32, 32)
    logits = model(x)
    cd = ContextualDecomposition(model)
    rel, irrel = cd(x, torch.ones(1, 1, 32, 32))
    assert torch.equal(irrel, torch.zeros_like(irrel))
    torch.testing.assert_close(rel, logits, atol=2e-5, rtol=1e-4)
    rel, irrel = cd(x, torch.zeros(1, 1, 32, 32))
    assert torch.equal(rel, torch.zeros_like(rel))
    torch.testing.assert_close(irrel, logits, atol=2e-5, rtol=1e-4)


def test_one_linear_layer_by_hand() -> None:
    """x = (1, -1), feature 0 relevant, W = [[1, 2], [0, 0]], b = (3, 4):
    z_rel = W (1, 0) = (1, 0), z_irrel = W (0, -1) = (-2, 0);
    unit 0 shares b_0 = 3 as 1/3 : 2/3 -> rel 1 + 1 = 2, irrel -2 + 2 = 0;
    unit 1 has both streams 0, so its bias 4 goes to irrel."""
    linear = nn.Linear(2, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
        linear.bias.copy_(torch.tensor([3.0, 4.0]))
    model = nn.Sequential(nn.Flatten(), linear)
    x = torch.tensor([1.0, -1.0]).view(1, 1, 1, 2)
    mask = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    rel, irrel = ContextualDecomposition(model)(x, mask)
    torch.testing.assert_close(rel, torch.tensor([[2.0, 0.0]]))
    torch.testing.assert_close(irrel, torch.tensor([[0.0, 4.0]]))


class _OfficialMnistNet(nn.Module):
    """The layer order of the official CDEP MNIST net (conv, max-pool, ReLU twice, then two
    linear layers), without BatchNorm, which the official code cannot decompose."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 5)
        self.conv2 = nn.Conv2d(4, 6, 5)
        self.fc1 = nn.Linear(6 * 4 * 4, 10)
        self.fc2 = nn.Linear(10, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return self.fc2(F.relu(self.fc1(x.view(-1, 6 * 4 * 4))))


def _official_rules(model: _OfficialMnistNet, x: Tensor, blob: Tensor) -> tuple[Tensor, Tensor]:
    """CDEP's ``src/cd.py`` for its MNIST net, restated: bias = layer(0), shares by magnitude
    with a 1e-19 stabiliser; ReLU linearised on rel; max-pool at the arg-max of the sum."""

    def layer(rel: Tensor, irrel: Tensor, module: nn.Module) -> tuple[Tensor, Tensor]:
        bias = module(torch.zeros_like(irrel))
        rel, irrel = module(rel) - bias, module(irrel) - bias
        total = rel.abs() + irrel.abs() + 1e-19
        return rel + rel.abs() / total * bias, irrel + irrel.abs() / total * bias

    def pool(rel: Tensor, irrel: Tensor) -> tuple[Tensor, Tensor]:
        _, indices = F.max_pool2d(rel + irrel, 2, return_indices=True)
        chosen = F.max_unpool2d(torch.ones_like(_), indices, 2, output_size=rel.shape[2:])
        return F.avg_pool2d(chosen * rel, 2) * 4, F.avg_pool2d(chosen * irrel, 2) * 4

    def relu(rel: Tensor, irrel: Tensor) -> tuple[Tensor, Tensor]:
        return F.relu(rel), F.relu(rel + irrel) - F.relu(rel)

    rel, irrel = blob * x, (1 - blob) * x
    rel, irrel = relu(*pool(*layer(rel, irrel, model.conv1)))
    rel, irrel = relu(*pool(*layer(rel, irrel, model.conv2)))
    rel, irrel = relu(*layer(rel.view(-1, 96), irrel.view(-1, 96), model.fc1))
    return layer(rel, irrel, model.fc2)


def test_matches_the_official_rules_on_their_mnist_net() -> None:
    torch.manual_seed(2)
    model = _OfficialMnistNet()
    x = torch.randn(5, 3, 28, 28)
    blob = torch.zeros(1, 1, 28, 28)
    blob[..., 3:9, 10:15] = 1
    rel, irrel = ContextualDecomposition(model)(x, blob)
    expected_rel, expected_irrel = _official_rules(model, x, blob)
    torch.testing.assert_close(rel, expected_rel, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(irrel, expected_irrel, atol=1e-5, rtol=1e-4)


def test_gradients_in_the_weights_are_those_of_the_eval_logits() -> None:
    """rel + irrel is the eval-mode logits as a function of the weights (BatchNorm's affine
    parameters included), so their weight gradients agree."""
    torch.manual_seed(3)
    model = _with_statistics(MODELS["small-cnn"](), 16)
    x, mask = torch.rand(4, 3, 16, 16), (torch.rand(4, 1, 16, 16) > 0.7).float()
    weights = torch.randn(4, 5)
    rel, irrel = ContextualDecomposition(model)(x, mask)
    got = torch.autograd.grad(((rel + irrel) * weights).sum(), list(model.parameters()))
    model.eval()
    expected = torch.autograd.grad((model(x) * weights).sum(), list(model.parameters()))
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.attn = nn.MultiheadAttention(3, 1)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.conv(x).flatten(2).permute(2, 0, 1)
        return self.attn(tokens, tokens, tokens)[0].mean(0)


class _Squares(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return (x * x).mean((2, 3))


def test_an_unsupported_layer_is_named_when_built() -> None:
    model = nn.Sequential()
    model.add_module("blocks", nn.Sequential(_Block()))
    with pytest.raises(TypeError, match=r"layer 'blocks\.0\.attn' \(MultiheadAttention\)"):
        ContextualDecomposition(model)
    with pytest.raises(TypeError, match=r"layer '1' \(LayerNorm\); supported: Conv1d"):
        ContextualDecomposition(nn.Sequential(nn.Flatten(), nn.LayerNorm(12)))
    with pytest.raises(TypeError, match=r"operation 'mul' \(mul\)"):
        ContextualDecomposition(_Squares())
    with pytest.raises(TypeError, match="running statistics; layer '0' .*track_running_stats"):
        ContextualDecomposition(nn.Sequential(nn.BatchNorm2d(3, track_running_stats=False)))


def test_bad_mask_is_one_line_error() -> None:
    cd = ContextualDecomposition(SmallCNN(num_classes=3, width=4))
    with pytest.raises(ValueError, match=r"mask must have shape .* got \(2, 1, 8, 8\)"):
        cd(torch.rand(2, 3, 16, 16), torch.ones(2, 1, 8, 8))
