"""Tiny data and models shared by the training tests.

Fixtures:
    shapes_data: 48 training images of 2 shape classes, 16x16 (``explainaug.data.shapes``).
    make_loader: ``make_loader(batch_size=8, seed=0)`` -> a shuffling CPU ``DeviceLoader`` over it.
    make_cnn: ``make_cnn()`` -> a seeded width-4 ``SmallCNN`` (BatchNorm) normalising with the
        data's statistics.
    make_contrastive: ``make_contrastive()`` -> a seeded ``ContrastiveModel`` around it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from explainaug.data.device_loader import DeviceLoader
from explainaug.data.shapes import shapes
from explainaug.models import ContrastiveModel, SmallCNN

SEED = 7


@pytest.fixture(scope="session")
def shapes_data():
    return shapes(n=48, size=16, num_classes=2, split="train", seed=SEED)


@pytest.fixture
def make_loader(shapes_data) -> Callable[..., DeviceLoader]:
    def make(batch_size: int = 8, seed: int = 0) -> DeviceLoader:
        return DeviceLoader(
            shapes_data, batch_size=batch_size, shuffle=True, device="cpu", seed=seed
        )

    return make


@pytest.fixture
def make_cnn(shapes_data) -> Callable[[], SmallCNN]:
    def make() -> SmallCNN:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            return SmallCNN(num_classes=2, width=4, mean=shapes_data.mean, std=shapes_data.std)

    return make


@pytest.fixture
def make_contrastive(shapes_data) -> Callable[[], ContrastiveModel]:
    def make() -> ContrastiveModel:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            encoder = SmallCNN(
                num_classes=None, width=4, mean=shapes_data.mean, std=shapes_data.std
            )
            return ContrastiveModel(encoder, encoder.num_features, proj_dim=8, num_classes=2)

    return make
