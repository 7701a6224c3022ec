"""A lazy, file-backed dataset: each image is decoded from disk when it is indexed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from explainaug._validation import check_count

Size = int | tuple[int, int]


def read_image(path: str | Path) -> Tensor:
    """Decode one image file with Pillow into uint8 RGB ``[3, H, W]`` (greyscale -> RGB).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is not a readable image (truncated, corrupt, another format),
            naming ``path``.

    Example:
        >>> read_image("/nonexistent.JPEG")
        Traceback (most recent call last):
        ...
        FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent.JPEG'
    """
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # Pillow reports bad files as OSError ("image file is truncated", "cannot identify
        # image file"), SyntaxError (malformed chunks) or ValueError
        raise ValueError(f"cannot read image {path}: {error}") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def fit_image(image: Tensor, size: Size) -> Tensor:
    """Resize ``image`` (``[C, H, W]``, any size) to cover ``size`` keeping its aspect ratio,
    then center-crop it to ``size`` (an int for a square, or ``(height, width)``).

    Example:
        >>> fit_image(torch.zeros(3, 40, 80, dtype=torch.uint8), 32).shape
        torch.Size([3, 32, 32])
    """
    height, width = pair(size)
    scale = max(height / image.shape[-2], width / image.shape[-1])
    covering = [
        max(height, round(image.shape[-2] * scale)),
        max(width, round(image.shape[-1] * scale)),
    ]
    if covering != list(image.shape[-2:]):
        image = TF.resize(image, covering, antialias=True)
    return TF.center_crop(image, [height, width])


def pair(size: Size) -> tuple[int, int]:
    """``(height, width)`` from an int side or a pair; ``ValueError``/``TypeError`` otherwise.

    Example:
        >>> pair(32), pair((24, 40))
        ((32, 32), (24, 40))
    """
    if isinstance(size, int) and not isinstance(size, bool):
        return check_count(size, "size"), size
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return check_count(size[0], "size[0]"), check_count(size[1], "size[1]")
    raise TypeError(f"size must be an int or a (height, width) pair, got {size!r}")


def read_images(paths: Sequence[str | Path]) -> Tensor:
    """Decode image files (JPEG, PNG, ...) into one uint8 RGB tensor ``[N, 3, H, W]``.

    Greyscale files are converted to RGB; every image must have the same size.

    Example:
        >>> read_images([])
        Traceback (most recent call last):
        ...
        ValueError: read_images needs at least one path
    """
    if len(paths) == 0:
        raise ValueError("read_images needs at least one path")
    images = [read_image(p) for p in paths]
    sizes = {tuple(image.shape) for image in images}
    if len(sizes) != 1:
        raise ValueError(f"all images must have the same size, found shapes {sorted(sizes)}")
    return torch.stack(images)


def read_mask(path: str | Path, size: Size | None = None) -> Tensor:
    """Decode a mask image (any format Pillow reads) into bool ``[1, H, W]``: its greyscale
    value above half (non-zero for binary masks); resized and cropped as :func:`fit_image`
    does to its image when ``size`` is given.

    Example:
        >>> read_mask("/nonexistent.png")
        Traceback (most recent call last):
        ...
        FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent.png'
    """
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"))
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read mask {path}: {error}") from None
    mask = torch.from_numpy(pixels.copy())[None]
    if size is not None:
        mask = fit_image(mask, size)
    return mask > 127


class ImageFileDataset(Dataset):
    """Images kept on disk and decoded on access, for sets too large to hold in memory.

    ``dataset[i]`` is ``(image float [3, H, W] in [0, 1], label)``, as for
    :class:`~explainaug.data.ImageTensorDataset`, followed by the image's object mask and cue
    mask (bool ``[1, H, W]``) where mask files are given; use it with
    ``torch.utils.data.DataLoader``.

    Args:
        paths: one image file per sample.
        labels: the class index of each file.
        mean: per-channel training mean in [0, 1] (metadata for the model's normalisation).
        std: per-channel training standard deviation.
        classes: class names.
        size: resize each image to cover ``size`` (int or ``(height, width)``) and
            center-crop it to that size (as ``image_folder``); None keeps the file's size.
        masks: one object-mask file per sample (see :func:`read_mask`), resized as its image.
        cue_masks: one cue-mask file per sample (needs ``masks``).

    Example:
        >>> ds = ImageFileDataset([], [], mean=(0.5,), std=(0.25,), classes=["a"])
        >>> len(ds), ds.num_classes
        (0, 1)
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[int],
        *,
        mean: Sequence[float],
        std: Sequence[float],
        classes: Sequence[str],
        size: Size | None = None,
        masks: Sequence[str | Path] | None = None,
        cue_masks: Sequence[str | Path] | None = None,
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError(f"got {len(paths)} paths but {len(labels)} labels")
        for name, files in (("masks", masks), ("cue_masks", cue_masks)):
            if files is not None and len(files) != len(paths):
                raise ValueError(f"got {len(paths)} paths but {len(files)} {name}")
        if cue_masks is not None and masks is None:
            raise ValueError("cue_masks needs masks too (batches are (x, y, masks, cue_masks))")
        self.mask_files = [
            [Path(p) for p in files] for files in (masks, cue_masks) if files is not None
        ]
        self.paths = [Path(p) for p in paths]
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.classes = list(classes)
        self.size = None if size is None else pair(size)

    @property
    def num_classes(self) -> int:
        """The number of named classes."""
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        image = read_image(self.paths[index])
        if self.size is not None:
            image = fit_image(image, self.size)
        masks = (read_mask(files[index], self.size) for files in self.mask_files)
        return image.float() / 255.0, self.labels[index], *masks
