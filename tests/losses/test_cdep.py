"""CDEP's penalty against the formula by hand, and the single-pixel prior's draws."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explainaug.losses.cdep import (
    CDEPPenalty,
    cdep_penalty,
    nonzero_frequency,
    single_pixel_masks,
)


def _tiny_model() -> nn.Module:
    linear = nn.Linear(4, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 1.0], [0.0, 1.0, -1.0, 2.0]]))
        linear.bias.copy_(torch.tensor([0.5, -1.0]))
    return nn.Sequential(nn.Flatten(), linear)


def _by_hand(model: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One linear layer: z = W (m x), W ((1 - m) x); the bias shared by |z| magnitudes; the
    penalty mean_{n,k} exp(rel) / (exp(rel) + exp(irrel))."""
    weight, bias = model[1].weight, model[1].bias
    z_rel = (mask * x).flatten(1) @ weight.T
    z_irrel = ((1 - mask) * x).flatten(1) @ weight.T
    share = z_rel.abs() / (z_rel.abs() + z_irrel.abs())
    rel, irrel = z_rel + share * bias, z_irrel + (1 - share) * bias
    return (rel.exp() / (rel.exp() + irrel.exp())).mean()


def test_penalty_is_the_formula_by_hand() -> None:
    model = _tiny_model()
    x = torch.tensor([[0.2, 0.9, 0.4, 0.7], [0.6, 0.1, 0.8, 0.3], [0.5, 0.5, 0.2, 0.9]])
    x = x.view(3, 1, 2, 2)
    masks = torch.tensor([[1.0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1]]).view(3, 1, 2, 2)
    got = CDEPPenalty(model)(x, masks)
    torch.testing.assert_close(got, _by_hand(model, x, masks))
    # several blobs per image: their penalties add up (the official loop over blobs)
    other = 1 - masks
    got = CDEPPenalty(model)(x, torch.stack([masks, other]))
    torch.testing.assert_close(got, _by_hand(model, x, masks) + _by_hand(model, x, other))
    # gradients reach the weights
    (weight_grad,) = torch.autograd.grad(got, [model[1].weight])
    assert weight_grad.abs().sum() > 0


def test_penalty_of_decomposed_logits() -> None:
    rel = torch.tensor([[1.0, -1.0], [0.0, 2.0]])
    irrel = torch.tensor([[0.0, 1.0], [0.0, -1.0]])
    expected = torch.sigmoid(torch.tensor([1.0, -2.0, 0.0, 3.0])).mean()
    torch.testing.assert_close(cdep_penalty(rel, irrel), expected)
    with pytest.raises(ValueError, match=r"same shape .* got \(2, 2\) and \(2,\)"):
        cdep_penalty(rel, irrel[0])


def test_single_pixels_per_batch_and_per_image() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 5, 5)
    masks = single_pixel_masks(x, pixels=3, generator=generator)
    assert masks.shape == (3, 1, 1, 5, 5)  # one set for the whole batch (official)
    assert masks.sum(dim=(2, 3, 4)).eq(1).all()
    masks = single_pixel_masks(x, pixels=3, draw="image", generator=generator)
    assert masks.shape == (3, 6, 1, 5, 5)
    assert masks.sum(dim=(2, 3, 4)).eq(1).all()
    with pytest.raises(ValueError, match="draw must be one of"):
        single_pixel_masks(x, draw="pixel")


def test_pixels_are_drawn_by_their_nonzero_frequency() -> None:
    x = torch.zeros(10, 3, 2, 2)
    x[:8, 1, 0, 0] = 0.5  # pixel 0 non-zero in 8 of 10 images
    x[:2, 2, 1, 1] = 0.5  # pixel 3 in 2 of 10
    weights = nonzero_frequency([(x, torch.zeros(10, dtype=torch.long))])
    torch.testing.assert_close(weights, torch.tensor([0.8, 0.0, 0.0, 0.2]))
    masks = single_pixel_masks(
        torch.rand(2000, 3, 2, 2),
        pixels=1,
        weights=weights,
        draw="image",
        generator=torch.Generator().manual_seed(1),
    )
    frequency = masks.flatten(2).mean(dim=(0, 1))
    assert frequency[1] == 0 and frequency[2] == 0
    assert abs(frequency[0].item() - 0.8) < 0.03
