"""The dataset type shared by every in-memory dataset of the package.

Images are stored as uint8 ``[N, C, H, W]`` (a quarter of the memory of float32) and handed out as
float in [0, 1]; models normalise inside, so ``mean``/``std`` are metadata for the model's
``Normalize`` layer, never applied here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from explainaug._validation import check_tensor


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation of uint8 images ``[N, C, H, W]``,
    in [0, 1] units, as tuples of C floats.

    Example:
        >>> channel_stats(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8))
        ((1.0,), (0.0,))
    """
    images = _check_uint8_images(images, "images")
    channels = images.transpose(0, 1).reshape(images.shape[1], -1).to(torch.float64) / 255.0
    mean = channels.mean(dim=1)
    std = channels.std(dim=1, unbiased=False)
    return tuple(mean.tolist()), tuple(std.tolist())


def _check_uint8_images(images: object, name: str) -> Tensor:
    images = check_tensor(images, name)
    if images.dtype != torch.uint8:
        raise TypeError(f"{name} must be a uint8 tensor [N, C, H, W], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape [N, C, H, W] with N >= 1, got {tuple(images.shape)}"
        )
    return images


def _check_masks(masks: object, images: Tensor, name: str) -> Tensor | None:
    if masks is None:
        return None
    masks = check_tensor(masks, name)
    expected = (images.shape[0], 1, *images.shape[2:])
    if masks.dtype != torch.bool or tuple(masks.shape) != expected:
        raise ValueError(
            f"{name} must be bool {list(expected)}, got {masks.dtype} {list(masks.shape)}"
        )
    return masks


class ImageTensorDataset(Dataset):
    """Images, labels and optional object masks held as tensors.

    Args:
        images: uint8 ``[N, C, H, W]`` (pixel values 0..255).
        labels: integer ``[N]`` class indices (stored as ``torch.long``).
        masks: optional bool ``[N, 1, H, W]`` ground-truth object masks.
        cue_masks: optional bool ``[N, 1, H, W]`` masks of a spurious cue (the shortcut testbed
            of :func:`~explainaug.data.shapes`); items leave them out, ``DeviceLoader`` hands
            them out with ``cue_masks=True``.
        mean: per-channel mean of the *training* images in [0, 1]; computed from ``images`` when
            None (right for a training split; pass the training split's values for a test split).
        std: per-channel standard deviation, same convention as ``mean``.
        classes: class names; ``num_classes`` is their count (else ``labels.max() + 1``).

    ``dataset[i]`` is ``(image, label)`` with the image float ``[C, H, W]`` in [0, 1], or
    ``(image, label, mask)`` when masks exist.

    Example:
        >>> ds = ImageTensorDataset(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.arange(4))
        >>> image, label = ds[1]
        >>> image.dtype, image.shape, int(label), ds.num_classes
        (torch.float32, torch.Size([3, 8, 8]), 1, 4)
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        masks: Tensor | None = None,
        *,
        cue_masks: Tensor | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        images = _check_uint8_images(images, "images")
        labels = check_tensor(labels, "labels")
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
        if labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must have shape [{images.shape[0]}], got {tuple(labels.shape)}"
            )
        if bool((labels < 0).any()):
            raise ValueError("labels must be >= 0")
        masks = _check_masks(masks, images, "masks")
        cue_masks = _check_masks(cue_masks, images, "cue_masks")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if mean is None:
            mean, std = channel_stats(images)
        if len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise ValueError(
                f"mean and std need {images.shape[1]} values (one per channel), "
                f"got {len(mean)} and {len(std)}"
            )
        self.images = images
        self.labels = labels.long()
        self.masks = masks
        self.cue_masks = cue_masks
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.classes = list(classes) if classes is not None else None
        if self.classes is not None and int(self.labels.max()) >= len(self.classes):
            raise ValueError(
                f"labels reach {int(self.labels.max())} but only "
                f"{len(self.classes)} classes are named"
            )

    @property
    def num_classes(self) -> int:
        """The number of classes (named classes, else the largest label + 1)."""
        if self.classes is not None:
            return len(self.classes)
        return int(self.labels.max()) + 1

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        image = self.images[index].float() / 255.0
        if self.masks is None:
            return image, self.labels[index]
        return image, self.labels[index], self.masks[index]

    def __repr__(self) -> str:
        shape = "x".join(str(s) for s in self.images.shape[1:])
        masks = ", masks" if self.masks is not None else ""
        masks += ", cue masks" if self.cue_masks is not None else ""
        return f"ImageTensorDataset({len(self)} images {shape}, {self.num_classes} classes{masks})"
