"""Model and data randomization checks: forward order, isolation, independence, controls."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from explainaug.evaluate.randomization import (
    data_randomization,
    forward_order,
    group_layers,
    model_randomization,
    sanity_maps,
)
from explainaug.explain import Explainer, GradCAM, Saliency
from explainaug.models import SmallCNN


class Shuffled(nn.Module):
    """Registration order (head, bn, conv_b, conv_a) differs from forward order."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.conv_b = nn.Conv2d(4, 4, 3, padding=1)
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.bn(self.conv_a(x)))
        x = torch.relu(self.conv_b(x))
        return self.head(x.mean(dim=(2, 3)))


class RecordingSaliency(Explainer):
    """Signed input gradient that records the model's parameters at every call."""

    def __init__(self, model: nn.Module, log: list[dict[str, Tensor]]) -> None:
        super().__init__(model)
        self.log = log

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        self.log.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        x = x.detach().requires_grad_(True)
        return torch.autograd.grad(self._scores(x, target)[0].sum(), x)[0]


class InputEdges(Explainer):
    """A model-independent "explainer": the image itself (fails the sanity check by design)."""

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        return x.clone()


def _changed(state: dict[str, Tensor], reference: dict[str, Tensor]) -> set[str]:
    """Module names whose tensors differ (ignoring BN's num_batches_tracked)."""
    return {
        key.rsplit(".", 1)[0]
        for key in state
        if not key.endswith("num_batches_tracked") and not torch.equal(state[key], reference[key])
    }


def _trained_bn(model: nn.Module) -> nn.Module:
    """Give BN layers non-default statistics so that resetting them is visible."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


@pytest.fixture
def images() -> Tensor:
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_forward_order_not_registration_order(images: Tensor) -> None:
    model = Shuffled()
    assert [name for name, _ in model.named_children()] == ["head", "bn", "conv_b", "conv_a"]
    assert forward_order(model, images) == ["conv_a", "bn", "conv_b", "head"]
    groups = group_layers(forward_order(model, images), dict(model.named_modules()))
    assert [name for name, _ in groups] == ["conv_a+bn", "conv_b", "head"]


def test_cascading_randomizes_top_down_in_forward_order_and_keeps_original(images: Tensor) -> None:
    torch.manual_seed(0)
    model = _trained_bn(Shuffled()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log: list[dict[str, Tensor]] = []
    result = model_randomization(
        model, lambda m: RecordingSaliency(m, log), images, similarity=("spearman_abs", "spearman")
    )
    assert result["steps"] == ["head", "conv_b", "conv_a+bn"]
    assert result["layers"] == [["head"], ["conv_b"], ["conv_a", "bn"]]
    assert _changed(log[0], before) == set()
    assert _changed(log[1], before) == {"head"}
    assert _changed(log[2], before) == {"head", "conv_b"}
    assert _changed(log[3], before) == {"head", "conv_b", "conv_a", "bn"}
    # BN statistics were reset with their block
    assert torch.equal(log[3]["bn.running_mean"], torch.zeros(4))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and all(m.training for m in model.modules())
    assert len(result["similarity"]["spearman"]["mean"]) == 3


def test_independent_changes_exactly_one_step(images: Tensor) -> None:
    model = _trained_bn(SmallCNN(num_classes=3, width=4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log: list[dict[str, Tensor]] = []
    result = model_randomization(
        model,
        lambda m: RecordingSaliency(m, log),
        images,
        mode="independent",
        similarity="spearman_abs",
    )
    assert result["steps"] == ["fc", "block3.0+block3.1", "block2.0+block2.1", "block1.0+block1.1"]
    assert len(log) == 1 + len(result["steps"])
    for snapshot, layers in zip(log[1:], result["layers"], strict=False):
        assert _changed(snapshot, before) == set(layers)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_group_depth_groups_by_name_prefix(images: Tensor) -> None:
    model = SmallCNN(num_classes=3, width=4)
    result = model_randomization(
        model, Saliency, images, similarity="spearman_abs", group_depth=1, include_random_map=False
    )
    assert result["steps"] == ["fc", "block3", "block2", "block1"]
    assert "random_map" not in result


def test_model_independent_explainer_never_changes_while_gradient_does(images: Tensor) -> None:
    model = SmallCNN(num_classes=3, width=4)
    names = ("spearman_abs", "spearman", "ssim", "hog")
    constant = model_randomization(model, InputEdges, images, similarity=names)
    for name in names:
        assert constant["similarity"][name]["mean"] == pytest.approx([1.0] * 4, abs=1e-5)
    gradient = model_randomization(
        model, lambda m: Saliency(m, abs=False), images, similarity=names
    )
    final = {name: gradient["similarity"][name]["mean"][-1] for name in names}
    assert final["spearman_abs"] < 0.9 and final["ssim"] < 0.9


def test_random_map_control_is_near_zero(images: Tensor) -> None:
    result = model_randomization(
        SmallCNN(num_classes=3, width=4),
        Saliency,
        images,
        similarity=("spearman_abs", "spearman", "ssim", "hog"),
    )
    control = result["random_map"]
    assert abs(control["spearman_abs"]["mean"]) < 0.1
    assert abs(control["spearman"]["mean"]) < 0.1
    assert abs(control["hog"]["mean"]) < 0.3
    assert control["ssim"]["mean"] < 0.2


def test_seed_makes_runs_reproducible(images: Tensor) -> None:
    model = SmallCNN(num_classes=3, width=4)
    first = model_randomization(model, Saliency, images, similarity="spearman_abs", seed=3)
    second = model_randomization(model, Saliency, images, similarity="spearman_abs", seed=3)
    assert first == second


def test_data_randomization_same_model_is_one(images: Tensor) -> None:
    model = SmallCNN(num_classes=3, width=4)
    other = SmallCNN(num_classes=3, width=4)
    same = data_randomization(model, model, Saliency, images, similarity=("spearman_abs", "ssim"))
    assert same["similarity"]["spearman_abs"]["mean"] == pytest.approx(1.0)
    assert same["similarity"]["ssim"]["mean"] == pytest.approx(1.0)
    different = data_randomization(model, other, Saliency, images, similarity="spearman_abs")
    assert different["similarity"]["spearman_abs"]["mean"] < 0.9


def test_bad_inputs_raise(images: Tensor) -> None:
    model = SmallCNN(num_classes=3, width=4)
    with pytest.raises(ValueError, match="mode"):
        model_randomization(model, Saliency, images, mode="top_down")
    with pytest.raises(ValueError, match="batch size 0"):
        model_randomization(model, Saliency, images[:0])
    with pytest.raises(ValueError, match="shape"):
        model_randomization(model, Saliency, images, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="similarity"):
        model_randomization(model, Saliency, images, similarity=("pearson",))
    with pytest.raises(ValueError, match="different model|model it is given"):
        model_randomization(model, lambda _: Saliency(model), images)

    class Custom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x: Tensor) -> Tensor:
            return x.flatten(1)[:, :3] * self.scale

    with pytest.raises(ValueError, match="reset_parameters"):
        model_randomization(Custom(), Saliency, images, similarity="spearman_abs")


def test_gradcam_enters_relu_and_max_normalised_like_the_papers_code(images: Tensor) -> None:
    """PAIR saliency's GradCam (used by the sanity checks): ReLU, divide by the max, bilinear
    resize; the raw CAM comes from Captum's LayerGradCam, whatever the explainer's ``relu``."""
    from captum.attr import LayerGradCam

    model = _trained_bn(SmallCNN(num_classes=3, width=4)).eval()
    target = torch.tensor([0, 1, 2, 0])
    raw = LayerGradCam(model, model.block2).attribute(images, target=target).detach()
    peak = raw.relu().amax(dim=(2, 3), keepdim=True)
    cam = raw.relu() / peak.clamp_min(1e-30)  # an all-negative CAM stays 0 (PAIR divides by 0)
    expected = torch.nn.functional.interpolate(cam, size=(32, 32), mode="bilinear")
    for relu in (True, False):
        got = sanity_maps(GradCAM(model, layer="block2", relu=relu), images, target)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)
    assert bool((raw < 0).any())  # the raw CAM had negative evidence that the ReLU removed


def test_input_space_attributions_stay_signed(images: Tensor) -> None:
    model = SmallCNN(num_classes=3, width=4).eval()
    target = torch.tensor([0, 1, 2, 0])
    maps = sanity_maps(Saliency(model, abs=False), images, target)
    assert maps.shape == images.shape and bool((maps < 0).any())
    torch.testing.assert_close(maps, Saliency(model, abs=False).attribute(images, target))
