"""DeviceLoader: coverage, per-epoch order, reproducibility, rank sharding, conversion."""

import logging

import pytest
import torch

from explainaug.data import DeviceLoader, ImageTensorDataset, make_loader


def make_data(n=23, masks=False):
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    labels = torch.arange(n)
    if masks:
        return images, labels, (labels % 2 == 0).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    return images, labels


def epoch_labels(loader):
    return torch.cat([batch[1] for batch in loader]).tolist()


def test_every_sample_exactly_once_per_epoch_and_batches_are_consistent():
    loader = DeviceLoader(make_data(), batch_size=5, device="cpu", seed=1)
    assert len(loader) == 5
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]
    assert sorted(epoch_labels(loader)) == list(range(23))
    for x, y in batches:  # image pixels carry their index: rows stay paired
        assert torch.equal(x[:, 0, 0, 0] * 255, y.float())


def test_order_changes_per_epoch_and_is_reproducible_by_seed_and_epoch():
    loader = DeviceLoader(make_data(), batch_size=4, device="cpu", seed=3)
    first, second = epoch_labels(loader), epoch_labels(loader)
    assert first != second and sorted(first) == sorted(second)
    other = DeviceLoader(make_data(), batch_size=4, device="cpu", seed=3)
    other.set_epoch(1)
    assert epoch_labels(other) == second  # epoch 1's order, whatever came before
    other.set_epoch(0)
    assert epoch_labels(other) == first
    assert epoch_labels(DeviceLoader(make_data(), 4, device="cpu", seed=4)) != first


def test_no_shuffle_keeps_dataset_order_and_drop_last():
    loader = DeviceLoader(make_data(), batch_size=5, shuffle=False, drop_last=True, device="cpu")
    assert len(loader) == 4 and epoch_labels(loader) == list(range(20))


@pytest.mark.parametrize("n, world_size", [(24, 4), (23, 4), (5, 3)])
def test_rank_shards_are_disjoint_equal_and_complete(n, world_size):
    shards = []
    for rank in range(world_size):
        loader = DeviceLoader(
            make_data(n), batch_size=2, device="cpu", seed=5, rank=rank, world_size=world_size
        )
        loader.set_epoch(2)
        shards.append(epoch_labels(loader))
    assert len({len(s) for s in shards}) == 1  # equal length on every rank
    merged = [label for shard in shards for label in shard]
    assert set(merged) == set(range(n))  # complete
    assert len(merged) - len(set(merged)) == -n % world_size  # only the padding repeats
    # the shards interleave one permutation, like DistributedSampler
    whole = DeviceLoader(make_data(n), batch_size=n, device="cpu", seed=5)
    whole.set_epoch(2)
    padded = (epoch_labels(whole) * 2)[: len(merged)]
    assert shards[1] == padded[1::world_size]


def test_uint8_to_float_conversion_is_exact_and_masks_come_along():
    images = torch.arange(256, dtype=torch.uint8).view(256, 1, 1, 1).expand(256, 3, 1, 1)
    loader = DeviceLoader(
        (images.contiguous(), torch.zeros(256, dtype=torch.long)),
        batch_size=256,
        shuffle=False,
        device="cpu",
    )
    x, _ = next(iter(loader))
    assert x.dtype == torch.float32
    assert torch.equal(x[:, 0, 0, 0], torch.arange(256, dtype=torch.float32) / 255)
    x, y, masks = next(iter(DeviceLoader(make_data(masks=True), batch_size=6, device="cpu")))
    assert masks.dtype == torch.bool and torch.equal(masks[:, 0, 0, 0], y % 2 == 0)


def test_accepts_datasets_and_rejects_bad_arguments():
    dataset = ImageTensorDataset(*make_data())
    assert len(DeviceLoader(dataset, batch_size=10, device="cpu")) == 3
    with pytest.raises(TypeError, match="ImageTensorDataset"):
        DeviceLoader([1, 2], batch_size=2, device="cpu")
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(dataset, batch_size=0, device="cpu")
    with pytest.raises(ValueError, match="rank"):
        DeviceLoader(dataset, batch_size=2, device="cpu", rank=2, world_size=2)
    with pytest.raises(TypeError, match="uint8"):
        DeviceLoader((torch.zeros(4, 3, 2, 2), torch.arange(4)), batch_size=2, device="cpu")


@pytest.mark.gpu
def test_batches_live_on_cuda_and_cover_the_data():
    loader = DeviceLoader(make_data(), batch_size=8, device="cuda", seed=0)
    x, y = next(iter(loader))
    assert x.is_cuda and y.is_cuda
    assert sorted(epoch_labels(loader)) == list(range(23))


def test_a_batch_larger_than_the_data_with_drop_last_is_refused_by_both_loaders(tmp_path):
    from explainaug.data import make_loader
    from explainaug.data.image_files import ImageFileDataset

    files = ImageFileDataset(
        [tmp_path / f"{i}.png" for i in range(6)], [0] * 6, mean=(0.5,), std=(0.25,), classes=["a"]
    )  # decoded by DataLoader workers: nothing is read before the first batch
    for data in (ImageTensorDataset(*make_data(6)), files):
        with pytest.raises(ValueError, match="a batch of 8 is larger than the 6 images"):
            make_loader(data, 8, drop_last=True, device="cpu", num_workers=0)
        with pytest.raises(ValueError, match="3 images per process"):
            make_loader(data, 4, drop_last=True, device="cpu", rank=1, world_size=2, num_workers=0)
        assert len(make_loader(data, 8, device="cpu", num_workers=0)) == 1  # no drop_last: fine


@pytest.mark.parametrize(("shuffle", "which"), [(True, "different"), (False, "same")])
def test_images_drop_last_leaves_out_are_logged(shuffle, which, caplog) -> None:
    """30 images in batches of 16 with drop_last: 14 sit out each epoch; say so, never silently."""
    data = ImageTensorDataset(torch.zeros(30, 3, 2, 2, dtype=torch.uint8), torch.arange(30) % 2)
    with caplog.at_level(logging.INFO, logger="explainaug"):
        loader = make_loader(data, 16, shuffle=shuffle, drop_last=True, device="cpu")
    assert sum(len(batch[1]) for batch in loader) == 16
    assert f"trains on 16 of the 30 images of the dataset; the {which} 14 sit out" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="explainaug"):
        make_loader(data, 15, drop_last=True, device="cpu")
    assert "sit out" not in caplog.text
