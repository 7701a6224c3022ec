"""scikit-learn's handwritten digits (shipped with the install) as 3x32x32 images in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from explainaug._validation import check_fraction, check_split
from explainaug.data.tensor_dataset import ImageTensorDataset, channel_stats

DIGITS_SIZE = 32


def digits(
    split: str = "train", *, seed: int = 0, test_fraction: float = 0.25
) -> ImageTensorDataset:
    """The 1,797 8x8 digits of ``sklearn.datasets.load_digits``, upsampled to 3x32x32.

    Grey levels 0..16 are scaled to [0, 1], upsampled bilinearly to 32x32, replicated to three
    channels and stored as uint8. The split is stratified by class and fixed by ``seed``; ``mean``
    and ``std`` always come from the training split.

    Args:
        split: ``"train"`` or ``"test"``.
        seed: seed of the stratified split.
        test_fraction: share of the images in the test split, in (0, 1).

    Example:
        >>> ds = digits("test")
        >>> len(ds), ds.num_classes, tuple(ds[0][0].shape)
        (450, 10, (3, 32, 32))
    """
    check_split(split)
    check_fraction(test_fraction, "test_fraction")
    bunch = load_digits()
    grey = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    grey = F.interpolate(
        grey, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False
    )
    images = (grey.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=test_fraction,
        stratify=bunch.target,
        random_state=seed,
    )
    train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    mean, std = channel_stats(images[train_idx])
    chosen = train_idx if split == "train" else test_idx
    return ImageTensorDataset(
        images[chosen], labels[chosen], mean=mean, std=std, classes=[str(d) for d in range(10)]
    )
