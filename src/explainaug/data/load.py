"""Datasets by name, from ``registry.DATASETS``: shared by the CLI, the recipes, the demo and
``evaluate``.

A name maps to a :class:`~explainaug.registry.DatasetEntry` naming its loader (one of the
``load_*`` functions below), whose ``load(split, **options)`` returns the ``"train"`` or
``"test"`` split. Options every loader understands (each uses what it needs): ``root`` (data
folder), ``size`` (image side), ``seed``, ``train_size`` (synthetic sets), ``download``,
``device`` (where the data will live, for the in-memory or on-disk choice), ``cue_correlation``
(``shapes`` only: the shortcut cue, see :func:`~explainaug.data.shapes`), ``masks`` and
``cue_masks`` (``folder`` only: parallel folders of mask images).

Example:
    >>> load_dataset("shapes", "test", size=16, train_size=8)
    ImageTensorDataset(2 images 3x16x16, 4 classes, masks)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from explainaug._validation import check_split
from explainaug.data.cifar import cifar100
from explainaug.data.digits import digits
from explainaug.data.image_folder import image_folder
from explainaug.data.shapes import shapes
from explainaug.data.tiny_imagenet import tiny_imagenet
from explainaug.registry import DATASETS

__all__ = ["load_dataset"]

# The loaders ``registry.DATASETS`` names: each takes every option of ``load_dataset`` and uses
# what it needs.


def load_shapes(
    split: str,
    *,
    size: int,
    seed: int,
    train_size: int,
    cue_correlation: float | None = None,
    **_: Any,
) -> Dataset:
    n = train_size if split == "train" else max(1, train_size // 4)
    return shapes(n=n, size=size, split=split, seed=seed, cue_correlation=cue_correlation)


def load_digits(split: str, **_: Any) -> Dataset:
    return digits(split)


def load_cifar100(split: str, *, root: str, download: bool, **_: Any) -> Dataset:
    return cifar100(Path(root), split, download=download)


def load_tiny_imagenet(split: str, *, root: str, **_: Any) -> Dataset:
    return tiny_imagenet(Path(root), split)


def load_folder(
    split: str,
    *,
    root: str,
    size: int,
    seed: int,
    device: Any = None,
    masks: str | None = None,
    cue_masks: str | None = None,
    **_: Any,
) -> Dataset:
    return image_folder(
        root, split, size, seed=seed, device=device, masks=masks, cue_masks=cue_masks
    )


def load_dataset(
    name: str,
    split: str,
    *,
    root: str | Path | None = None,
    size: int = 32,
    seed: int = 0,
    train_size: int = 2000,
    download: bool = False,
    device: Any = None,
    cue_correlation: float | None = None,
    masks: str | Path | None = None,
    cue_masks: str | Path | None = None,
) -> Dataset:
    """The ``split`` (``"train"`` or ``"test"``) of the dataset registered as ``name``.

    Raises:
        ValueError: unknown name or split, a missing ``root`` for a dataset on disk, or a
            ``cue_correlation`` for a dataset other than ``shapes``, or mask folders for a
            dataset other than ``folder``.

    Example:
        >>> len(load_dataset("digits", "test")) > 0
        True
    """
    entry = DATASETS[name]
    check_split(split)
    if entry.needs_root and not root:
        raise ValueError(f"dataset {name!r} needs a data folder (--data): {entry.summary}")
    if cue_correlation is not None and name != "shapes":
        raise ValueError(f"cue_correlation needs the shapes dataset, got dataset {name!r}")
    if (masks is not None or cue_masks is not None) and name != "folder":
        raise ValueError(f"mask folders need the folder dataset, got dataset {name!r}")
    return entry.load()(
        split,
        root=str(root) if root else None,
        size=size,
        seed=seed,
        train_size=train_size,
        download=download,
        device=device,
        cue_correlation=cue_correlation,
        masks=None if masks is None else str(masks),
        cue_masks=None if cue_masks is None else str(cue_masks),
    )
