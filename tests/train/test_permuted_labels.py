"""The permuted-label training of Adebayo et al.'s data randomization test, through the Trainer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from explainaug.models import SmallCNN
from explainaug.train import train_on_permuted_labels


def test_train_on_permuted_labels_memorises_and_is_deterministic() -> None:
    x = torch.rand(16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    loader = [(x[:8], torch.arange(8) % 2), (x[8:], torch.arange(8) % 2)]

    def make() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(48, 32), nn.ReLU(), nn.Linear(32, 2))

    model, accuracy = train_on_permuted_labels(make, loader, epochs=30, lr=3e-2, batch_size=16)
    assert accuracy >= 0.95
    again, _ = train_on_permuted_labels(make, loader, epochs=30, lr=3e-2, batch_size=16)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=False)
    )
    assert not model.training


def test_an_empty_loader_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        train_on_permuted_labels(lambda: SmallCNN(num_classes=2, width=4), [], epochs=1)
