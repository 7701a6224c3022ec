"""Fixtures shared across test folders: tiny dataset trees in the real on-disk formats, and
Kornia-style ``device`` and ``dtype`` fixtures for the contract suites.

``device`` runs a test on the CPU and, when a GPU is present, on CUDA too; ``dtype`` in float32
and, when a GPU is present, in bfloat16 too (the mixed-precision dtype of training). A test
that parametrizes ``dtype`` itself overrides the fixture.
"""

import hashlib
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import CIFAR100

GPU = torch.cuda.is_available()
DEVICES = ["cpu", "cuda"] if GPU else ["cpu"]
DTYPES = [torch.float32, torch.bfloat16] if GPU else [torch.float32]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each available device: the CPU, and CUDA when there is a GPU."""
    return torch.device(request.param)


@pytest.fixture(params=DTYPES, ids=lambda dtype: str(dtype).removeprefix("torch."))
def dtype(request) -> torch.dtype:
    """float32, and bfloat16 when there is a GPU."""
    return request.param


def md5(path):
    """Hex md5 of a file."""
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """A 6-train / 4-test CIFAR-100 tree in the pickle format of the official archive.

    The official files are Python 2 pickles whose str keys (b'data', b'fine_labels', ...) load
    as str under torchvision's encoding="latin1"; protocol-2 pickles with str keys load the same.

    torchvision checks each file's md5 against the official archive's; the test registers the
    md5s of its own files on the CIFAR100 class (restored afterwards), so the loader runs its
    normal, fully checked code path.
    """
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in (("train", 6), ("test", 4)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 100, size=n)]
        entry = {
            "filenames": ["x.png"] * n,
            "batch_label": name,
            "fine_labels": labels,
            "coarse_labels": [0] * n,
            "data": data,
        }
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        splits[name] = (data, labels)
    meta = {"fine_label_names": [f"class{i}" for i in range(100)], "coarse_label_names": ["all"]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5(folder / "train")]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5(folder / "test")]])
    monkeypatch.setattr(CIFAR100, "meta", {**CIFAR100.meta, "md5": md5(folder / "meta")})
    return tmp_path, splits


def _write_tiny_imagenet(base, val_layout, rng):
    """Two classes, 3 train and 2 val 64x64 JPEGs each (one greyscale), standard layout."""
    wnids = ["n02", "n01"]  # wnids.txt order, not alphabetical, sets labels
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    pixels = {}
    for label, wnid in enumerate(wnids):
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(3):
            ramp = np.linspace(0, 1, 64)[:, None, None] * np.ones((64, 64, 3))  # smooth
            array = (ramp * rng.uniform(60, 255, size=3)).astype(np.uint8)
            image = (
                Image.fromarray(array).convert("L")
                if (label, i) == (1, 2)
                else Image.fromarray(array)
            )
            image.save(folder / f"{wnid}_{i}.JPEG", quality=95)
            pixels[("train", wnid, i)] = array
    lines = []
    for label, wnid in enumerate(wnids):
        for i in range(2):
            name = f"val_{label * 2 + i}.JPEG"
            folder = base / "val" / (wnid if val_layout == "folders" else "") / "images"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(
                folder / name
            )
            lines.append(f"{name}\t{wnid}\t0\t0\t63\t63")
    if val_layout == "annotations":
        (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return wnids, pixels


@pytest.fixture
def write_tiny_imagenet():
    """A function writing a tiny ``tiny-imagenet-200`` tree: (base, val_layout, rng) -> wnids, pixels."""
    return _write_tiny_imagenet


FOLDER_COLOURS = {"circle": (220, 40, 40), "square": (40, 200, 60), "stripe": (30, 60, 230)}


def _write_image_folder(root, n_train=6, n_val=2, seed=0):
    """An ImageFolder tree of PNGs: per class, solid images of the class colour in varied
    sizes (non-square included) with a random bright patch; ``n_val=0`` writes no ``val/``."""
    rng = np.random.default_rng(seed)
    sizes = [(20, 20), (24, 40), (40, 18), (33, 33), (16, 28)]
    for split, n in (("train", n_train), ("val", n_val)):
        for name, colour in FOLDER_COLOURS.items():
            if n == 0:
                continue
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                height, width = sizes[i % len(sizes)]
                array = np.empty((height, width, 3), dtype=np.uint8)
                array[:] = colour
                top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
                array[top : top + height // 3, left : left + width // 3] = 255
                Image.fromarray(array).save(folder / f"{name}_{i}.png")
    return root


@pytest.fixture
def write_image_folder():
    """A function writing a small ImageFolder tree of PNGs: (root, n_train, n_val, seed) -> root."""
    return _write_image_folder
