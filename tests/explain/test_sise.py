"""SISE and Ada-SISE: localisation on a hand-built model, a naive per-mask reference, the
authors' fusion code, batch independence, automatic layers, and model state."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.filters import threshold_otsu
from torch import Tensor, nn

from explainaug.explain import SISE, AdaSISE
from explainaug.explain.sise import _code_otsu_threshold, block_output_layers, cascade_fusion
from explainaug.models import ContrastiveModel, SmallCNN, resnet18, resnet50

RED, GREEN = 0, 1
RED_SQUARE = (slice(2, 6), slice(2, 6))


class ColourNet(nn.Module):
    """Hand-set detectors: the red logit grows with red pixels only, the green one with green.

    block1 channels: two red detectors, two green detectors, a background-brightness detector
    (weakly positive for "red", so SISE keeps it and must score it low) and a blue detector
    (constant zero on the test image, so it must be skipped). block2 blurs each channel.
    """

    def __init__(self) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.block2 = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False), nn.ReLU())
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 2)
        colours = torch.tensor(
            [
                [1.0, -1.0, -1.0],
                [1.0, -1.0, -1.0],
                [-1.0, 1.0, -1.0],
                [-1.0, 1.0, -1.0],
                [1 / 3, 1 / 3, 1 / 3],
                [-1.0, -1.0, 1.0],
            ]
        )
        with torch.no_grad():
            self.block1[0].weight.zero_()
            self.block1[0].weight[:, :, 1, 1] = colours
            self.block1[0].weight[1] = colours[1][:, None, None] / 9  # a blurry red detector
            self.block1[0].weight[3] = colours[3][:, None, None] / 9
            self.block1[0].bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0, -0.4, 0.0]))
            self.block2[0].weight.fill_(1 / 9)
            self.fc.weight.copy_(
                40
                * torch.tensor([[1.0, 1.0, -1.0, -1.0, 0.3, 0.0], [-1.0, -1.0, 1.0, 1.0, 0.0, 0.0]])
            )
            self.fc.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        features = self.block2(self.pool(self.block1(x)))
        return self.fc(self.avgpool(features).flatten(1))


def _colour_image() -> Tensor:
    generator = torch.Generator().manual_seed(0)
    image = 0.5 + 0.04 * (torch.rand(1, 3, 16, 16, generator=generator) - 0.5)
    image[0, :, RED_SQUARE[0], RED_SQUARE[1]] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    image[0, :, 10:14, 10:14] = torch.tensor([0.0, 1.0, 0.0])[:, None, None]
    return image


def _no_hooks(model: nn.Module) -> bool:
    return all(
        not module._forward_hooks and not module._backward_hooks for module in model.modules()
    )


@pytest.mark.parametrize("explainer_class", [SISE, AdaSISE])
@pytest.mark.parametrize("fusion", ["sigmoid", "binary"])
def test_map_concentrates_on_the_decisive_region(explainer_class: type, fusion: str) -> None:
    model = ColourNet().eval()
    image = _colour_image()
    assert model(image).argmax(dim=1).tolist() == [RED]
    explainer = explainer_class(model, fusion=fusion)
    maps = explainer(image, target=RED)
    assert explainer.last_layers == ["block1", "block2"]
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[1:7, 1:7] = True  # the red square and a one-pixel rim (masks are upsampled)
    share = float(maps[0, 0][region].sum() / maps.sum())
    uniform = float(region.float().mean())
    assert share > 4 * uniform  # about 0.8 against a uniform share of 0.14
    assert float(maps[0, 0, 10:14, 10:14].sum()) < 0.05 * float(maps.sum())  # not the green one
    # the blue detector is constant (skipped), green detectors have negative gradients
    assert explainer.last_num_masks.max() <= 3


def test_adasise_keeps_a_strict_subset_of_sise_channels(cnn: nn.Module, images: Tensor) -> None:
    sise, ada, sparse = SISE(cnn), AdaSISE(cnn), SISE(cnn, mu=0.5)
    for explainer in (sise, ada, sparse):
        explainer(images, target=1)
    assert bool((ada.last_num_masks <= sise.last_num_masks).all())
    assert bool((ada.last_num_masks.sum(dim=1) < sise.last_num_masks.sum(dim=1)).all())
    assert bool((ada.last_num_masks >= 1).all())  # the strongest channel always stays
    assert bool((sparse.last_num_masks <= sise.last_num_masks).all())
    assert sparse.last_num_masks.sum() < sise.last_num_masks.sum()


def _naive_single_layer(
    model: nn.Module, layer: nn.Module, x: Tensor, target: Tensor, score: str, mu: float
) -> tuple[Tensor, list[int]]:
    """SISE with one layer, one image and one mask at a time, written from the paper."""

    def class_score(logits: Tensor, c: int) -> Tensor:
        return (logits.softmax(dim=1) if score == "probability" else logits)[0, c]

    maps, counts = [], []
    for image, c in zip(x, target.tolist(), strict=False):
        image = image[None]
        captured = {}
        handle = layer.register_forward_hook(
            lambda _m, _i, out, captured=captured: captured.update(a=out)
        )
        try:
            logits = model(image.clone().requires_grad_(True))
        finally:
            handle.remove()
        grads = torch.autograd.grad(class_score(logits, c), captured["a"])[0][0]
        alpha = grads.mean(dim=(1, 2))
        activation = captured["a"][0].detach()
        total, count = torch.zeros(x.shape[2:]), 0
        for k in range(activation.shape[0]):
            if alpha[k] <= 0 or alpha[k] <= mu * alpha.max():
                continue
            if activation[k].max() == activation[k].min():
                continue
            mask = F.interpolate(
                activation[k][None, None], size=x.shape[2:], mode="bilinear", align_corners=False
            )[0, 0]
            mask = (mask - mask.min()) / (mask.max() - mask.min())
            with torch.no_grad():
                s = class_score(model(image * mask), c)
            total += s * mask / mask.sum()
            count += 1
        maps.append((total - total.min()) / (total.max() - total.min()))
        counts.append(count)
    return torch.stack(maps), counts


@pytest.mark.parametrize("score", ["probability", "logit"])
@pytest.mark.parametrize("mu", [0.0, 0.3])
def test_mask_scoring_matches_naive_loop(
    cnn: nn.Module, images: Tensor, labels: Tensor, score: str, mu: float
) -> None:
    explainer = SISE(cnn, layers=["block2"], mu=mu, score=score, internal_batch_size=3)
    maps = explainer(images, target=labels)
    expected, counts = _naive_single_layer(cnn, cnn.block2, images, labels, score, mu)
    torch.testing.assert_close(maps[:, 0], expected, atol=1e-5, rtol=1e-4)
    assert explainer.last_num_masks[:, 0].tolist() == counts


@pytest.mark.parametrize("explainer_class", [SISE, AdaSISE])
@pytest.mark.parametrize("fusion", ["sigmoid", "binary"])
def test_batch_equals_one_image_at_a_time(
    cnn: nn.Module, images: Tensor, labels: Tensor, explainer_class: type, fusion: str
) -> None:
    x, target = images, labels
    explainer = explainer_class(cnn, fusion=fusion, internal_batch_size=7)
    batched = explainer(x, target=target)
    batched_counts = explainer.last_num_masks
    for index in range(3):
        single = explainer(x[index : index + 1], target=target[index : index + 1])
        torch.testing.assert_close(batched[index : index + 1], single, atol=1e-5, rtol=1e-4)
        assert torch.equal(explainer.last_num_masks[0], batched_counts[index])


def _authors_otsu(image: np.ndarray, nbins: int = 256, tau: float = 1.5) -> float:
    """The SISE authors' ``otsu()`` (TF code for ECE1512), transcribed loop for loop."""
    levels = np.round(image * nbins)
    hist, _ = np.histogram(levels.ravel(), nbins, [0, nbins])
    i = np.arange(nbins)
    varsb = np.zeros(nbins)
    for j in range(1, nbins):
        w0, w1 = np.sum(hist[0:j]), np.sum(hist[j:nbins])
        u0 = np.sum(hist[0:j] * i[0:j]) / w0
        u1 = np.sum(hist[j:nbins] * i[j:nbins]) / w1
        varsb[j] = w0 * w1 * (u0 - u1) ** 2
    t = np.argmax(varsb)
    k = round(t * tau)
    if np.sum(hist[int(k) : 256]) < 0.1 * np.sum(hist):
        return t * tau / nbins
    return t / nbins


def _minmaxed_maps(seed: int) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(3, 4, 12, 12, generator=generator).double() ** 3
    maps[0, :, 3:6, 3:6] += 2.0  # a few bright pixels: the authors' raised threshold applies
    flat = maps.flatten(2)
    low, high = flat.amin(dim=2, keepdim=True), flat.amax(dim=2, keepdim=True)
    return ((flat - low) / (high - low)).view_as(maps)


def test_code_otsu_matches_authors_code_including_the_raised_branch() -> None:
    maps = _minmaxed_maps(0).flatten(0, 1).flatten(1)
    ours = _code_otsu_threshold(maps).tolist()
    expected = [_authors_otsu(row.numpy()) for row in maps]
    assert ours == pytest.approx(expected, abs=1e-12)
    # with tau = 1 both branches return t / 256: the rows where they differ took the raised one
    raised = [
        value != _authors_otsu(row.numpy(), tau=1.0)
        for value, row in zip(expected, maps, strict=False)
    ]
    assert any(raised) and not all(raised)


def test_sigmoid_fusion_matches_authors_code() -> None:
    maps = _minmaxed_maps(1)
    fused = cascade_fusion(maps, "sigmoid", temperature=100.0)
    for image, result in zip(maps.numpy(), fused, strict=False):
        ex = image[0].copy()
        for layer_map in image[1:]:
            ex += layer_map
            ex *= 1 / (1 + np.exp(-(layer_map - _authors_otsu(layer_map)) * 100.0))
        ex = (ex - ex.min()) / (ex.max() - ex.min())
        np.testing.assert_allclose(result[0].numpy(), ex, atol=1e-10)


def test_binary_fusion_is_the_papers_cascade() -> None:
    maps = _minmaxed_maps(2)
    fused = cascade_fusion(maps, "binary")
    expected = maps[:, 0]
    for level in range(1, 4):
        layer_map = maps[:, level]
        # scikit-image's threshold is the bin centre; the hard mask keeps values above the bin
        threshold = torch.tensor(
            [threshold_otsu(single.numpy(), nbins=256) + 0.5 / 256 for single in layer_map]
        )
        expected = (expected + layer_map) * (layer_map > threshold[:, None, None])
    flat = expected.flatten(1)
    low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    expected = (flat - low) / (high - low)
    torch.testing.assert_close(fused[:, 0], expected.view_as(fused[:, 0]))


def test_automatic_layers_follow_the_blocks() -> None:
    x = torch.zeros(1, 3, 32, 32)
    assert block_output_layers(resnet18(10, width=4), x) == ["layer1", "layer2", "layer3", "layer4"]
    assert block_output_layers(resnet50(10, width=4), x) == ["layer1", "layer2", "layer3", "layer4"]
    assert block_output_layers(SmallCNN(width=4), x) == ["block1", "block2", "block3"]
    contrastive = ContrastiveModel(resnet18(None, width=4), 32, num_classes=3)
    assert block_output_layers(contrastive, x) == [f"encoder.layer{i}" for i in range(1, 5)]
    explainer = SISE(contrastive.eval())
    explainer(torch.rand(1, 3, 16, 16), target=0)
    assert explainer.last_layers == [f"encoder.layer{i}" for i in range(1, 5)]
    assert explainer.last_num_masks.shape == (1, 4)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 2))
    with pytest.raises(ValueError, match="layers="):
        block_output_layers(mlp, x)


def test_layers_override_by_module_or_name(cnn: nn.Module, images: Tensor) -> None:
    by_name = SISE(cnn, layers=["block1", "block3"])(images, target=1)
    by_module = SISE(cnn, layers=[cnn.block1, cnn.block3])(images, target=1)
    torch.testing.assert_close(by_name, by_module)
    assert by_name.shape == (3, 1, 16, 16)
    assert float(by_name.min()) >= 0 and float(by_name.max()) == pytest.approx(1.0)


def test_default_target_is_the_prediction(cnn: nn.Module, images: Tensor) -> None:
    explainer = AdaSISE(cnn)
    predicted = cnn(images).argmax(dim=1)
    torch.testing.assert_close(explainer(images), explainer(images, target=predicted))
    torch.testing.assert_close(explainer.attribute(images), explainer(images))


def test_model_state_and_hooks_are_restored(make_cnn, images: Tensor) -> None:
    model = make_cnn().train()
    model.block2.eval()
    buffers = {name: value.clone() for name, value in model.named_buffers()}
    modes = [module.training for module in model.modules()]
    SISE(model)(images, target=0)
    assert [module.training for module in model.modules()] == modes
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name
    assert _no_hooks(model)
    assert all(parameter.grad is None for parameter in model.parameters())


@pytest.mark.parametrize(("fail_at", "fail_in"), [(1, "forward"), (1, "backward"), (3, "forward")])
def test_state_restored_after_an_exception(
    make_cnn, images: Tensor, fail_at: int, fail_in: str
) -> None:
    model = make_cnn(fail_at=fail_at, fail_in=fail_in).train()
    buffers = {name: value.clone() for name, value in model.named_buffers()}
    with pytest.raises(RuntimeError, match="injected failure"):
        SISE(model, layers=["block2", "block3"], internal_batch_size=2)(images, target=0)
    assert all(module.training for module in model.modules())
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name
    assert _no_hooks(model)


def test_bad_arguments(cnn: nn.Module, images: Tensor) -> None:
    with pytest.raises(ValueError, match="not differentiable"):
        SISE(cnn)(images, target=0, create_graph=True)
    with pytest.raises(ValueError, match="mu"):
        SISE(cnn, mu=1.5)
    with pytest.raises(ValueError, match="fusion"):
        SISE(cnn, fusion="simple")
    with pytest.raises(ValueError, match="score"):
        AdaSISE(cnn, score="prob")
    with pytest.raises(ValueError, match="internal_batch_size"):
        SISE(cnn, internal_batch_size=0)
    with pytest.raises(ValueError, match="temperature"):
        SISE(cnn, temperature=0.0)
    with pytest.raises(ValueError, match="at least one"):
        SISE(cnn, layers=[])
    with pytest.raises(ValueError, match="unknown layer"):
        SISE(cnn, layers=["block9"])
    with pytest.raises(ValueError, match="4-D"):
        SISE(cnn, layers=["fc"])(images, target=0)
    with pytest.raises(ValueError, match="target"):
        SISE(cnn)(images, target=7)
    assert _no_hooks(cnn)


@pytest.mark.gpu
def test_cuda_matches_cpu(cnn: nn.Module, images: Tensor, labels: Tensor) -> None:
    for explainer_class in (SISE, AdaSISE):
        cpu = explainer_class(cnn, fusion="sigmoid")(images, target=labels)
        cuda_model = cnn.cuda()
        try:
            gpu = explainer_class(cuda_model, fusion="sigmoid")(images.cuda(), target=labels.cuda())
        finally:
            cnn.cpu()
        torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-3)


def test_automatic_layers_are_found_on_a_model_in_train_mode() -> None:
    """The layer probe feeds one image: BatchNorm in train mode refused its 1x1 maps."""
    import torchvision

    from explainaug.explain import SISE

    model = torchvision.models.resnet18(num_classes=5).train()
    maps = SISE(model, internal_batch_size=8)(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))
    assert maps.shape == (2, 1, 32, 32) and model.training
