"""Linear evaluation: a frozen encoder stays frozen and separable features are learnt."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explainaug.train import linear_eval


class MeanEncoder(nn.Module):
    """Per-channel means (frozen): class 0 images are red, class 1 images are blue."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn(x.mean(dim=(2, 3)) * self.scale)


def coloured(n: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 3, 8, 8, generator=generator) * 0.3
    x[y == 0, 0] += 0.6
    x[y == 1, 2] += 0.6
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, n, 8)]


def test_learns_separable_features_and_leaves_encoder_untouched():
    encoder = MeanEncoder().train()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    result = linear_eval(
        encoder, coloured(32, 0), coloured(32, 1), num_classes=2, epochs=15, lr=0.5
    )
    assert result.test_accuracy == 1.0
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert encoder.training  # mode restored
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key  # no gradient step, no BN update


def test_contrastive_model_is_evaluated_through_features(make_contrastive):
    model = make_contrastive()
    batches = [(torch.rand(8, 3, 16, 16), torch.arange(8) % 2)]
    result = linear_eval(model, batches, batches, num_classes=2, epochs=1)
    assert result.classifier.in_features == model.encoder.num_features


def test_bad_epochs():
    with pytest.raises(ValueError, match="epochs"):
        linear_eval(MeanEncoder(), coloured(8, 0), coloured(8, 1), num_classes=2, epochs=0)


def test_restores_each_module_mode():
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.Dropout()).train()
    encoder[2].eval()
    batches = [(torch.rand(6, 1, 2, 2), torch.arange(6) % 2)]
    linear_eval(encoder, batches, batches, num_classes=2, epochs=1)
    assert encoder.training and encoder[1].training and not encoder[2].training
