"""The released CIFAR-10-C / CIFAR-100-C files (Hendrycks & Dietterich, 2019).

Layout: ``<root>/<corruption>.npy`` holds uint8 ``[5 * N, H, W, 3]`` images, severity-major
(severity 1's N images first, then severity 2's, ...), and ``<root>/labels.npy`` holds the labels,
either ``[5 * N]`` (as released) or ``[N]``. Only the requested severity's block is read from disk
(memory-mapped), so one cell costs N images of memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from explainaug.data.tensor_dataset import ImageTensorDataset

SEVERITIES = (1, 2, 3, 4, 5)


def corrupted_npy(
    root: str | Path,
    corruption: str,
    severity: int,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    classes: Sequence[str] | None = None,
) -> ImageTensorDataset:
    """One (corruption, severity) cell of a CIFAR-C style folder as a dataset.

    Args:
        root: the folder with ``<corruption>.npy`` and ``labels.npy``.
        corruption: a file stem in ``root``, e.g. ``"gaussian_noise"`` or ``"jpeg_compression"``.
        severity: 1..5.
        mean: the clean training set's per-channel mean (e.g. ``CIFAR100_MEAN``); computed from
            these images when None.
        std: the clean training set's per-channel standard deviation.
        classes: class names, e.g. ``cifar100(root).classes``.

    Returns:
        An :class:`ImageTensorDataset` of the N images of that severity.

    Example:
        >>> corrupted_npy("/nonexistent", "fog", 1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: corruption file /nonexistent/fog.npy does not exist; ...
    """
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    root = Path(root)
    path = root / f"{corruption}.npy"
    if not path.is_file():
        found = sorted(p.stem for p in root.glob("*.npy") if p.stem != "labels")
        raise FileNotFoundError(
            f"corruption file {path} does not exist; corruptions found in "
            f"{root}: {found if found else 'none'}"
        )
    labels_path = root / "labels.npy"
    if not labels_path.is_file():
        raise FileNotFoundError(f"labels file {labels_path} does not exist")
    images = np.load(path, mmap_mode="r")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"{path} must hold uint8 images [5*N, H, W, 3], got {images.dtype} {list(images.shape)}"
        )
    if images.shape[0] % len(SEVERITIES):
        raise ValueError(
            f"{path} holds {images.shape[0]} images, not a multiple of {len(SEVERITIES)} severities"
        )
    n = images.shape[0] // len(SEVERITIES)
    labels = np.load(labels_path)
    if labels.ndim != 1 or labels.shape[0] not in (n, len(SEVERITIES) * n):
        raise ValueError(
            f"{labels_path} must hold {n} or {len(SEVERITIES) * n} labels, got "
            f"shape {list(labels.shape)}"
        )
    block = slice((severity - 1) * n, severity * n)
    severity_labels = labels[block] if labels.shape[0] > n else labels
    pixels = torch.from_numpy(np.array(images[block])).permute(0, 3, 1, 2)
    labels_tensor = torch.from_numpy(severity_labels.astype(np.int64))
    return ImageTensorDataset(
        pixels.contiguous(), labels_tensor, mean=mean, std=std, classes=classes
    )
