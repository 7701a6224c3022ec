"""ImageTensorDataset, digits() and shapes()."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from explainaug.data import ImageTensorDataset, channel_stats, digits, shapes


def test_tensor_dataset_items_and_stats():
    images = torch.tensor([[[[0, 255]]], [[[51, 102]]]], dtype=torch.uint8)  # [2, 1, 1, 2]
    ds = ImageTensorDataset(images, torch.tensor([1, 0]), classes=["a", "b"])
    image, label = ds[0]
    assert image.tolist() == [[[0.0, 1.0]]] and int(label) == 1
    values = np.array([0, 255, 51, 102]) / 255
    assert ds.mean == pytest.approx((values.mean(),)) and ds.std == pytest.approx((values.std(),))
    assert ds.num_classes == 2 and len(ds) == 2


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"images": torch.zeros(2, 1, 2, 2)}, TypeError),  # float images
        ({"labels": torch.zeros(3, dtype=torch.long)}, ValueError),  # wrong length
        ({"masks": torch.zeros(2, 1, 2, 2)}, ValueError),  # float masks
        ({"classes": ["only one"], "labels": torch.tensor([0, 1])}, ValueError),  # label 1 unnamed
    ],
)
def test_tensor_dataset_rejects_bad_inputs(kwargs, error):
    args = {"images": torch.zeros(2, 1, 2, 2, dtype=torch.uint8), "labels": torch.tensor([0, 0])}
    args.update(kwargs)
    with pytest.raises(error):
        ImageTensorDataset(**args)


def test_digits_shapes_ranges_and_stratified_deterministic_split():
    train, test = digits(split="train"), digits(split="test")
    assert len(train) + len(test) == 1797 and len(test) == 450
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # grey, replicated
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    # stratified: every class's share matches the full set's within one image
    full = torch.bincount(torch.cat([train.labels, test.labels]), minlength=10).float()
    assert (torch.bincount(test.labels, minlength=10) - full * 450 / 1797).abs().max() <= 1
    assert torch.equal(digits(split="test").images, test.images)  # deterministic
    assert not torch.equal(digits(split="test", seed=1).labels, test.labels)
    assert test.mean == train.mean == pytest.approx(channel_stats(train.images)[0])


def test_digits_rejects_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        digits(test_fraction=1.5)


@pytest.fixture(scope="module")
def shape_sets():
    return shapes(n=400, split="train", seed=0), shapes(n=200, split="test", seed=0)


def test_shapes_deterministic_by_seed_and_split(shape_sets):
    train, test = shape_sets
    again = shapes(n=400, split="train", seed=0)
    assert torch.equal(again.images, train.images) and torch.equal(again.masks, train.masks)
    assert not torch.equal(shapes(n=400, seed=1).images, train.images)
    assert not torch.equal(test.images, train.images[:200])
    assert test.mean == shapes(n=200, split="train", seed=0).mean  # stats from train


def test_shapes_balanced_and_masks_cover_the_object(shape_sets):
    train, _ = shape_sets
    assert torch.bincount(train.labels).tolist() == [100, 100, 100, 100]
    x = train.images.float() / 255
    m = train.masks.float()
    inside = (x * m).sum((2, 3)) / m.sum((2, 3))
    outside = (x * (1 - m)).sum((2, 3)) / (1 - m).sum((2, 3))
    # the object's colour differs from the background's mean by >= ~0.3 (minus clutter)
    assert (inside - outside).abs().amax(1).min() > 0.15
    assert bool((m.sum((1, 2, 3)) > 20).all())  # never empty


def test_shapes_class_not_predictable_from_colour_or_size_position(shape_sets):
    train, test = shape_sets

    def colour(ds):
        x, m = ds.images.float() / 255, ds.masks.float()
        return ((x * m).sum((2, 3)) / m.sum((2, 3))).numpy()

    classifier = LogisticRegression(max_iter=1000).fit(colour(train), train.labels.numpy())
    assert classifier.score(colour(test), test.labels.numpy()) < 0.4  # chance is 0.25


def test_shapes_class_is_learnable_from_the_image(shape_sets):
    # A tiny translation-invariant CNN (global max pooling) on 16x16 downsampled images.
    torch.manual_seed(0)
    train, test = shape_sets
    model = nn.Sequential(
        nn.AvgPool2d(2),
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = (train.images.float() / 255 - 0.5) / 0.2, train.labels
    for _ in range(10):
        for batch in torch.randperm(len(y)).split(50):
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        predictions = model((test.images.float() / 255 - 0.5) / 0.2).argmax(1)
    assert (predictions == test.labels).float().mean() > 0.55  # chance is 0.25


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"size": 8}, {"num_classes": 7}])
def test_shapes_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        shapes(**kwargs)
