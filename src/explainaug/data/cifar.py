"""CIFAR-100 from its standard on-disk format, through ``torchvision.datasets.CIFAR100``."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.datasets import CIFAR100

from explainaug._validation import check_split
from explainaug.data.tensor_dataset import ImageTensorDataset

CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


def cifar100(
    root: str | Path, split: str = "train", *, download: bool = False
) -> ImageTensorDataset:
    """CIFAR-100 (50,000 train or 10,000 test 3x32x32 images, 100 fine labels) in memory.

    Reads ``<root>/cifar-100-python/{train,test,meta}`` with torchvision, which checks every
    file's md5; the pickled uint8 pixels become an :class:`ImageTensorDataset` whose ``mean`` and
    ``std`` are CIFAR-100's training statistics.

    ``root`` is the folder that holds (or will hold) ``cifar-100-python``; ``download`` fetches
    the archive first (needs internet). Missing files raise ``FileNotFoundError``, files that fail
    the md5 check ``ValueError``.

    Example:
        >>> cifar100("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: CIFAR-100 not found in /nonexistent/cifar-100-python ...
    """
    check_split(split)
    folder = Path(root) / CIFAR100.base_folder
    names = [name for name, _ in (*CIFAR100.train_list, *CIFAR100.test_list)]
    missing = [n for n in (*names, CIFAR100.meta["filename"]) if not (folder / n).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"CIFAR-100 not found in {folder} (missing {', '.join(missing)}); pass --download "
            "(download=True) to download it, or point --data (root) at the folder that "
            f"contains '{CIFAR100.base_folder}'"
        )
    try:
        data = CIFAR100(str(root), train=split == "train", download=download)
    except RuntimeError as error:
        raise ValueError(
            f"CIFAR-100 files in {folder} failed torchvision's md5 check "
            f"(corrupted or partial download): {error}"
        ) from None
    except OSError as error:  # no network (urllib's URLError), a refused or broken connection
        if not download:
            raise
        raise FileNotFoundError(
            f"could not download CIFAR-100 into {root}: {getattr(error, 'reason', error)}; "
            f"download and extract cifar-100-python.tar.gz there by hand"
        ) from None
    images = torch.from_numpy(data.data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(data.targets, dtype=torch.long)
    return ImageTensorDataset(
        images, labels, mean=CIFAR100_MEAN, std=CIFAR100_STD, classes=data.classes
    )
