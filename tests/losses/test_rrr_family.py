"""The right-for-the-right-reasons losses against formulas computed by hand.

A linear model ``z = W x + b`` has closed-form input gradients, so RRR's and SGT's gradients
(and their derivatives w.r.t. the weights) have independent oracles; the Grad-CAM penalties
are checked against the package's GradCAM (itself tested against Captum) and hand-written
normalisation, resizing and sums.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from explainaug.explain import GradCAM
from explainaug.losses import (
    HINTLoss,
    RRRGradCAMLoss,
    RRRLoss,
    SGTLoss,
    gradcam_terms,
    hint_penalty,
    input_gradient_penalty,
    rrr_gradcam_penalty,
)
from explainaug.losses.cam_penalty import normalize_cam
from explainaug.losses.sgt import bottom_k_mask, kl_clean_masked, random_fill, sgt_saliency
from explainaug.models import SmallCNN

C, H, W, K = 2, 3, 3, 4


class LinearModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(C * H * W, K)

    def forward(self, x):
        return self.linear(x.flatten(1))


def _batch(seed=0, n=5):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, C, H, W, generator=generator)
    y = torch.randint(0, K, (n,), generator=generator)
    region = (torch.rand(n, 1, H, W, generator=generator) > 0.5).float()
    return x, y, region


def _linear(seed=0):
    torch.manual_seed(seed)
    model = LinearModel()
    with torch.no_grad():
        model.linear.weight.mul_(5)  # confident enough that sum_k log p_k has a real gradient
    return model


def test_rrr_penalty_and_its_weight_gradient_equal_the_closed_form() -> None:
    model = _linear()
    x, y, region = _batch()
    weight, bias = model.linear.weight, model.linear.bias
    # by hand: d/dx sum_k log p_k = sum_k W_k - K * sum_j p_j W_j, for each image
    p = torch.softmax(x.flatten(1) @ weight.T + bias, dim=1)
    grads = (weight.sum(0) - K * p @ weight).view(-1, C, H, W)
    oracle = (region * grads).square().sum(dim=(1, 2, 3)).mean()
    oracle_grad = torch.autograd.grad(oracle, weight)[0]

    logits, penalty = input_gradient_penalty(model, x, region)
    assert torch.allclose(logits, x.flatten(1) @ weight.T + bias)
    assert penalty.item() == pytest.approx(oracle.item(), rel=1e-5)
    assert penalty.item() > 1e-3  # not a vanishing case
    double_backprop = torch.autograd.grad(penalty, weight)[0]
    assert torch.allclose(double_backprop, oracle_grad, rtol=1e-4, atol=1e-6)

    loss = RRRLoss(model, weight=0.3)(x, y, region)
    assert loss.item() == pytest.approx((F.cross_entropy(logits, y) + 0.3 * oracle).item(), 1e-5)


def test_rrr_penalty_vanishes_outside_the_region_and_at_a_uniform_softmax() -> None:
    model = _linear()
    x, _, _ = _batch()
    assert input_gradient_penalty(model, x, torch.zeros(5, 1, H, W))[1].item() == 0
    with torch.no_grad():
        model.linear.weight.zero_()
    # every class equally likely: the summed log-probabilities have no input gradient
    assert input_gradient_penalty(model, x, torch.ones(5, 1, H, W))[1].item() == 0


def test_sgt_saliency_is_the_signed_gradient_of_log_p_y_in_eval_mode() -> None:
    model = _linear()
    x, y, _ = _batch()
    weight, bias = model.linear.weight, model.linear.bias
    with torch.no_grad():
        p = torch.softmax(x.flatten(1) @ weight.T + bias, dim=1)
        oracle = (weight[y] - p @ weight).view(-1, C, H, W).mean(dim=1, keepdim=True)
    assert torch.allclose(sgt_saliency(model, x, y), oracle, atol=1e-6)

    cnn = SmallCNN(num_classes=3, width=4).train()
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    saliency = sgt_saliency(cnn, torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
    eval_copy = SmallCNN(num_classes=3, width=4)
    eval_copy.load_state_dict(before)
    eval_copy.eval()
    x = torch.rand(4, 3, 16, 16)
    assert cnn.training and all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())
    # eval mode: each image's saliency is its own (BatchNorm uses running statistics)
    single = sgt_saliency(cnn, x[:1], torch.tensor([0]))
    assert torch.allclose(sgt_saliency(cnn, x, torch.tensor([0, 1, 2, 0]))[:1], single, atol=1e-6)
    assert saliency.shape == (4, 1, 16, 16)


def test_bottom_k_is_signed_not_by_magnitude() -> None:
    saliency = torch.tensor([[[[5.0, -0.1, -7.0], [0.01, -3.0, 2.0], [9.0, -0.5, 0.0]]]])
    chosen = bottom_k_mask(saliency, 0.34)  # int(0.34 * 9) = 3 lowest: -7, -3, -0.5
    assert chosen.flatten().tolist() == [
        False, False, True, False, True, False, False, True, False,
    ]  # fmt: skip
    assert bottom_k_mask(saliency, 0.1).sum() == 0  # int(0.9) = 0 pixels
    by_magnitude = bottom_k_mask(-saliency.abs(), 0.34)
    assert not torch.equal(chosen, by_magnitude)  # the 5.0 / 9.0 / -7.0 of largest magnitude


def test_random_fill_draws_within_each_images_range_per_channel() -> None:
    x = torch.stack([torch.full((C, H, W), 0.5), torch.rand(C, H, W) * 0.2 + 0.7])
    x[0, 0, 0, 0], x[0, 1, 2, 2] = 0.1, 0.3
    mask = torch.zeros(2, 1, H, W, dtype=torch.bool)
    mask[:, :, 1:] = True
    filled = random_fill(x, mask, torch.Generator().manual_seed(0))
    assert torch.equal(filled[:, :, :1], x[:, :, :1])  # outside the mask: untouched
    for i in range(2):
        inside = filled[i, :, 1:]
        assert inside.min() >= x[i].min() and inside.max() <= x[i].max()
    assert not torch.equal(filled[0, 0, 1:], filled[0, 1, 1:])  # channels drawn separately


def test_kl_runs_from_the_clean_prediction_to_the_masked_one() -> None:
    clean = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.5, 0.0]])
    masked = torch.tensor([[0.0, 0.0, 0.0], [3.0, -2.0, 0.0]])
    p, q = clean.softmax(1), masked.softmax(1)
    forward = (p * (p.log() - q.log())).sum(1).mean()
    reverse = (q * (q.log() - p.log())).sum(1).mean()
    assert kl_clean_masked(clean, masked).item() == pytest.approx(forward.item(), rel=1e-6)
    assert abs(forward - reverse) > 0.05


def test_sgt_loss_is_cross_entropy_plus_kl_on_the_masked_images() -> None:
    model = _linear()
    x, y, _ = _batch(n=6)
    loss_fn = SGTLoss(model, fraction=0.5, weight=2.0)
    torch.manual_seed(3)
    loss = loss_fn(x, y)
    torch.manual_seed(3)
    masked = random_fill(x, bottom_k_mask(sgt_saliency(model, x, y), 0.5))
    clean = model(x)
    oracle = F.cross_entropy(clean, y) + 2.0 * kl_clean_masked(clean, model(masked))
    assert loss.item() == pytest.approx(oracle.item(), rel=1e-6)
    # the clean branch is not detached: the KL alone moves the weights through both branches
    _, _, kl = loss_fn.terms(x, y)
    assert torch.autograd.grad(kl, model.linear.weight)[0].abs().sum() > 0


def _cnn():
    torch.manual_seed(0)
    return SmallCNN(num_classes=3, width=4).train()


def _hand_cam(model, x, target, detach_weights, layer="block2"):
    """Grad-CAM at ``layer`` from hooks: sum_k mean_hw(dS/dA_k) A_k."""
    store = {}
    handle = getattr(model, layer).register_forward_hook(lambda m, i, o: store.setdefault("a", o))
    logits = model(x)
    handle.remove()
    activations = store["a"]
    target = logits.argmax(1) if target is None else target
    score = logits.gather(1, target[:, None]).sum()
    (grads,) = torch.autograd.grad(score, activations, create_graph=not detach_weights)
    return logits, (grads.mean(dim=(2, 3), keepdim=True) * activations).sum(1, keepdim=True)


@pytest.mark.parametrize("second_order", [False, True])
def test_gradcam_terms_match_the_package_gradcam_and_hand_written_weights(second_order) -> None:
    model = _cnn()
    x = torch.rand(4, 3, 32, 32)
    y = torch.tensor([0, 1, 2, 0])
    # block2: the head after it is not linear in its output, so the channel weights depend on
    # the weights below it (after block3 they are constants of a linear head)
    cam = GradCAM(model, layer="block2")
    logits, maps = gradcam_terms(cam, x, y, second_order=second_order)
    assert torch.allclose(maps, cam.attribute(x, y), atol=1e-6)
    _, oracle = _hand_cam(model, x, y, detach_weights=not second_order)
    weight = model.block1[0].weight
    ours = torch.autograd.grad(maps.square().sum(), weight, retain_graph=True)[0]
    expected = torch.autograd.grad(oracle.square().sum(), weight)[0]
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-7)
    if not second_order:  # the channel weights held constant differ from full second order
        _, full = _hand_cam(model, x, y, detach_weights=False)
        full_grad = torch.autograd.grad(full.square().sum(), weight)[0]
        assert not torch.allclose(ours, full_grad, rtol=1e-3)


def test_cam_penalties_equal_their_formulas() -> None:
    torch.manual_seed(0)
    maps = torch.randn(3, 1, 8, 8)
    region = (torch.rand(3, 1, 32, 32) > 0.7).float()
    shifted = maps - maps.amin(dim=(1, 2, 3), keepdim=True)
    normalised = shifted / (shifted.amax(dim=(1, 2, 3), keepdim=True) + 1e-6)
    assert torch.allclose(normalize_cam(maps), normalised)
    small = v2.Resize((8, 8), antialias=True)(region)  # torchvision's Resize, as the framework
    oracle = (small * normalised).square().sum(dim=(1, 2, 3)).mean()
    assert rrr_gradcam_penalty(maps, region).item() == pytest.approx(oracle.item(), rel=1e-5)
    big = F.interpolate(normalised, size=(32, 32), mode="bilinear", align_corners=False)
    hint = (big - region).square().sum(dim=(1, 2, 3)).mean()
    assert hint_penalty(maps, region).item() == pytest.approx(hint.item(), rel=1e-5)


def test_cam_losses_target_the_predicted_and_the_true_class() -> None:
    model = _cnn()
    x = torch.rand(4, 3, 32, 32)
    region = (torch.rand(4, 1, 32, 32) > 0.5).float()
    cam = GradCAM(model, layer="block2")
    with torch.no_grad():
        predicted = model(x).argmax(1)
    y = (predicted + 1) % 3  # labels that are never the prediction
    rrr_g = RRRGradCAMLoss(cam, weight=0.5)(x, y, region)
    logits, maps = _hand_cam(model, x, None, detach_weights=True)
    expected = F.cross_entropy(logits, y) + 0.5 * rrr_gradcam_penalty(maps, region)
    assert rrr_g.item() == pytest.approx(expected.item(), rel=1e-5)
    hint = HINTLoss(cam, weight=0.5)(x, y, region)
    logits, maps = _hand_cam(model, x, y, detach_weights=True)
    expected = F.cross_entropy(logits, y) + 0.5 * hint_penalty(maps, region)
    assert hint.item() == pytest.approx(expected.item(), rel=1e-5)
