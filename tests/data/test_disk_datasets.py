"""CIFAR-100, Tiny ImageNet and CIFAR-C .npy loaders on tiny trees in the real on-disk formats."""

import shutil

import numpy as np
import pytest
import torch

from explainaug.data import (
    CIFAR100_MEAN,
    ImageFileDataset,
    ImageTensorDataset,
    cifar100,
    corrupted_npy,
    tiny_imagenet,
)


def test_cifar100_reads_the_pickles(cifar_root):
    root, splits = cifar_root
    for name in ("train", "test"):
        ds = cifar100(root, name)
        data, labels = splits[name]
        assert isinstance(ds, ImageTensorDataset) and ds.images.dtype == torch.uint8
        assert torch.equal(ds.images, torch.from_numpy(data).view(-1, 3, 32, 32))  # CHW rows
        assert ds.labels.tolist() == labels
        assert ds.mean == CIFAR100_MEAN and ds.num_classes == 100 and ds.classes[3] == "class3"
        image, _label = ds[0]
        assert torch.equal(image, torch.from_numpy(data[0]).view(3, 32, 32).float() / 255)


def test_cifar100_errors_name_the_folder_and_the_fix(cifar_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True") as error:
        cifar100(tmp_path / "elsewhere")
    assert "elsewhere" in str(error.value)
    (tmp_path / "cifar-100-python" / "test").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="md5"):
        cifar100(tmp_path, split="test")


@pytest.mark.parametrize("val_layout", ["annotations", "folders"])
def test_tiny_imagenet_reads_train_and_both_val_layouts(tmp_path, val_layout, write_tiny_imagenet):
    wnids, _ = write_tiny_imagenet(
        tmp_path / "tiny-imagenet-200", val_layout, np.random.default_rng(0)
    )
    train = tiny_imagenet(tmp_path, "train")
    assert train.images.shape == (6, 3, 64, 64) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1] and train.classes == wnids
    grey = train.images[5].float()
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # grey -> RGB
    val = tiny_imagenet(tmp_path / "tiny-imagenet-200", "test")
    assert sorted(val.labels.tolist()) == [0, 0, 1, 1] and len(val) == 4
    lazy = tiny_imagenet(tmp_path, "train", lazy=True)
    assert isinstance(lazy, ImageFileDataset) and len(lazy) == 6
    image, label = lazy[4]
    assert torch.equal(image, train[4][0]) and int(label) == 1


def test_tiny_imagenet_pixels_are_the_saved_images(tmp_path, write_tiny_imagenet):
    pixels = write_tiny_imagenet(
        tmp_path / "tiny-imagenet-200", "annotations", np.random.default_rng(1)
    )[1]
    train = tiny_imagenet(tmp_path)
    original = torch.from_numpy(pixels[("train", "n02", 1)]).permute(2, 0, 1).float()
    error = (train.images[1].float() - original).abs().mean()
    assert error < 0.1 * (original - original.mean()).abs().mean()  # JPEG loss only


def test_tiny_imagenet_errors(tmp_path, write_tiny_imagenet):
    with pytest.raises(FileNotFoundError, match="wnids.txt"):
        tiny_imagenet(tmp_path)
    base = tmp_path / "tiny-imagenet-200"
    write_tiny_imagenet(base, "annotations", np.random.default_rng(0))
    with pytest.raises(ValueError, match="split must be one of .'train', 'test'., got 'val'"):
        tiny_imagenet(tmp_path, "val")
    shutil.rmtree(base / "train" / "n01")
    with pytest.raises(FileNotFoundError, match="n01"):
        tiny_imagenet(tmp_path, "train")
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match="n99"):
        tiny_imagenet(tmp_path, "test")


@pytest.fixture
def npy_root(tmp_path):
    rng = np.random.default_rng(0)
    n = 4
    images = rng.integers(0, 256, size=(5 * n, 8, 8, 3), dtype=np.uint8)
    labels = np.tile(np.arange(n, dtype=np.uint8), 5)
    np.save(tmp_path / "fog.npy", images)
    np.save(tmp_path / "labels.npy", labels)
    return tmp_path, images, labels


def test_corrupted_npy_selects_the_severity_block(npy_root):
    root, images, labels = npy_root
    for severity in range(1, 6):
        ds = corrupted_npy(root, "fog", severity, mean=CIFAR100_MEAN, std=(0.2, 0.2, 0.2))
        block = images[(severity - 1) * 4 : severity * 4]
        assert torch.equal(ds.images, torch.from_numpy(block).permute(0, 3, 1, 2))
        assert ds.labels.tolist() == [0, 1, 2, 3] and ds.mean == CIFAR100_MEAN
    np.save(root / "labels.npy", labels[:4])  # [N] labels are accepted too
    assert corrupted_npy(root, "fog", 2).labels.tolist() == [0, 1, 2, 3]


def test_corrupted_npy_errors(npy_root):
    root, images, _ = npy_root
    with pytest.raises(FileNotFoundError, match=r"\['fog'\]"):
        corrupted_npy(root, "snow", 1)
    for severity in (0, 6, True):
        with pytest.raises(ValueError, match="severity"):
            corrupted_npy(root, "fog", severity)
    np.save(root / "bad.npy", images[:7])
    with pytest.raises(ValueError, match="multiple of 5"):
        corrupted_npy(root, "bad", 1)
    np.save(root / "labels.npy", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels"):
        corrupted_npy(root, "fog", 1)
