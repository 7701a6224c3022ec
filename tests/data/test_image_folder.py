"""Your own images: ImageFolder trees of real PNG files, eager and lazy, sharded by rank."""

import logging
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from explainaug.data import (
    ImageFileDataset,
    ImageTensorDataset,
    channel_stats,
    device_loader,
    fit_image,
    folder_split,
    image_folder,
    make_loader,
    read_image,
)


def test_labels_and_files_follow_torchvision_imagefolder(tmp_path, write_image_folder):
    root = write_image_folder(tmp_path / "data")
    for split, folder in (("train", "train"), ("test", "val")):
        paths, labels, classes = folder_split(root, split)
        oracle = ImageFolder(str(root / folder))
        assert classes == oracle.classes
        assert [(str(p), y) for p, y in zip(paths, labels, strict=True)] == oracle.samples


def test_eager_images_are_resized_and_center_cropped_with_train_statistics(
    tmp_path, write_image_folder
):
    root = write_image_folder(tmp_path / "data")
    train = image_folder(root, "train", size=12, lazy=False)
    val = image_folder(root, "test", size=12, lazy=False)
    assert isinstance(train, ImageTensorDataset) and train.images.shape == (18, 3, 12, 12)
    assert len(val) == 6 and val.classes == ["circle", "square", "stripe"]
    assert train.mean == val.mean and train.std == val.std  # the training split's, both
    assert train.mean == pytest.approx(channel_stats(train.images)[0])
    # the bottom-right corner of every image is the class colour (the patch is top-left)
    paths, labels, classes = folder_split(root, "train")
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            colour = np.asarray(image)[-1, -1]
        assert train.images[i, :, -1, -1].tolist() == colour.tolist()


def test_non_square_images_cover_the_size_then_crop_the_centre() -> None:
    # 20x40: left half red, right half blue; covering 10x10 gives 10x20, the centre crop keeps
    # 5 red columns and 5 blue ones
    image = torch.zeros(3, 20, 40, dtype=torch.uint8)
    image[0, :, :20] = 255
    image[2, :, 20:] = 255
    out = fit_image(image, 10)
    assert out.shape == (3, 10, 10)
    assert out[:, :, :4].float().mean(dim=(1, 2)).tolist() == [255.0, 0.0, 0.0]
    assert out[:, :, 6:].float().mean(dim=(1, 2)).tolist() == [0.0, 0.0, 255.0]
    assert fit_image(image, (8, 12)).shape == (3, 8, 12)
    with pytest.raises(ValueError, match="size must be an int >= 1"):
        fit_image(image, 0)


def test_without_val_folder_a_seeded_stratified_split(tmp_path, write_image_folder):
    root = write_image_folder(tmp_path / "data", n_train=10, n_val=0)
    train_paths, train_labels, _ = folder_split(root, "train", test_fraction=0.2, seed=1)
    val_paths, val_labels, _ = folder_split(root, "test", test_fraction=0.2, seed=1)
    assert np.bincount(val_labels).tolist() == [2, 2, 2]  # 20 % of every class
    assert np.bincount(train_labels).tolist() == [8, 8, 8]
    assert not set(train_paths) & set(val_paths)
    assert len(set(train_paths) | set(val_paths)) == 30
    assert folder_split(root, "test", seed=1)[0] == val_paths  # reproducible
    assert folder_split(root, "test", seed=2)[0] != val_paths
    assert (
        image_folder(root, "test", size=8, seed=1).mean == image_folder(root, size=8, seed=1).mean
    )


def test_lazy_dataset_decodes_the_same_pixels(tmp_path, write_image_folder):
    root = write_image_folder(tmp_path / "data")
    eager = image_folder(root, "train", size=(10, 14), lazy=False)
    lazy = image_folder(root, "train", size=(10, 14), lazy=True)
    assert isinstance(lazy, ImageFileDataset) and lazy.mean == eager.mean
    for i in (0, 7, 17):
        assert torch.equal(lazy[i][0], eager[i][0]) and lazy[i][1] == eager[i][1]


def test_automatic_choice_is_logged(tmp_path, write_image_folder, caplog, monkeypatch):
    root = write_image_folder(tmp_path / "data")
    with caplog.at_level(logging.INFO, logger="explainaug"):
        assert isinstance(image_folder(root, size=8, device="cpu"), ImageTensorDataset)
        monkeypatch.setattr(device_loader, "fits_on_device", lambda n_bytes, device: False)
        assert isinstance(image_folder(root, size=8, device="cpu"), ImageFileDataset)
    first, second = caplog.messages
    assert "18 images" in first and "stays on the device (DeviceLoader)" in first
    assert "decoded in DataLoader workers" in second


def test_lazy_loader_shards_by_rank_and_follows_the_epoch(tmp_path, write_image_folder):
    root = write_image_folder(tmp_path / "data")
    lazy = image_folder(root, "train", size=8, lazy=True)
    seen = []
    for rank in (0, 1):
        loader = make_loader(lazy, 3, rank=rank, world_size=2, num_workers=0, device="cpu")
        loader.sampler.set_epoch(0)
        batches = list(loader)
        assert len(batches) == 3 and batches[0][0].shape == (3, 3, 8, 8)
        seen.append(torch.cat([x.flatten(1) for x, _ in batches]))
    everything = torch.stack([lazy[i][0].flatten() for i in range(len(lazy))])
    together = torch.cat(seen)
    assert torch.equal(together.sort(dim=0).values, everything.sort(dim=0).values)


def test_errors_name_the_layout(tmp_path, write_image_folder):
    with pytest.raises(FileNotFoundError, match="no class folders with images"):
        (tmp_path / "empty" / "train").mkdir(parents=True)
        image_folder(tmp_path / "empty")
    root = write_image_folder(tmp_path / "data")
    (root / "val" / "zebra").mkdir()
    with pytest.raises(ValueError, match="zebra"):
        folder_split(root, "test")
    with pytest.raises(ValueError, match="split must be one of .'train', 'test'., got 'val'"):
        folder_split(root, "val")
    assert read_image(next((root / "train" / "circle").iterdir())).dtype == torch.uint8


def test_one_class_is_refused(tmp_path, write_image_folder):
    """One class trains to loss 0 and accuracy 1 without learning anything: refuse it."""
    root = write_image_folder(tmp_path / "data")
    for name in sorted(p.name for p in (root / "train").iterdir())[1:]:
        shutil.rmtree(root / "train" / name)
        shutil.rmtree(root / "val" / name)
    with pytest.raises(ValueError, match="one class folder .* a classifier needs at least two"):
        image_folder(root)
    # a flat folder of images (no class folders below it) is one class too
    with pytest.raises(ValueError, match="a classifier needs at least two"):
        image_folder(root / "train")


def test_too_few_images_to_hold_out_says_so(tmp_path, write_image_folder):
    root = write_image_folder(tmp_path / "data", n_train=1, n_val=0)
    assert len(image_folder(root, "train", lazy=False)) == 3  # every image trains
    with pytest.raises(FileNotFoundError, match="no class has two images to hold one out"):
        image_folder(root, "test")
