"""Your own images in torchvision's ImageFolder layout.

Layouts read::

    DIR/train/<class>/*.png|jpg|...   training images, one folder per class
    DIR/val/<class>/*                 the test split's images; optional
    DIR/<class>/*                     also accepted when there is no DIR/train

Without ``val/``, a seeded, stratified fraction of every class is held out as the test split. Images of any size (non-square included) are resized so that they cover ``size``
(aspect ratio kept) and center-cropped to it. ``mean``/``std`` are always the training split's.

Masks (object masks, and masks of a cue that must not matter) come from parallel folders:
``MASKS/train/<class>/<name>.<any image format>`` for ``DIR/train/<class>/<name>.jpg``, the
same size as its image, resized and cropped with it; non-zero (above half grey) marks the region.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from explainaug._validation import check_fraction, check_split
from explainaug.data.image_files import (
    ImageFileDataset,
    Size,
    fit_image,
    pair,
    read_image,
    read_mask,
)
from explainaug.data.tensor_dataset import ImageTensorDataset, channel_stats

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")
STATS_IMAGES = 2000
"""At most this many training images (a seeded sample) give ``mean``/``std``."""

logger = logging.getLogger("explainaug")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def folder_split(
    root: str | Path, split: str = "train", *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[list[Path], list[int], list[str]]:
    """The image files, labels and class names of one split of an ImageFolder tree.

    Classes are the sorted sub-folders of the training folder. Without ``val/``, each class
    with at least two images gives ``round(n * test_fraction)`` of them (at least one) to the
    test split, chosen by ``seed``; the rest is the training split. With ``val/``, the test
    split is its images (ImageFolder's name for the held-out folder).

    Example:
        >>> folder_split("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: no image folder at /nonexistent: ...
    """
    check_split(split)
    check_fraction(test_fraction, "test_fraction")
    root = Path(root)
    train_dir = root / "train" if (root / "train").is_dir() else root
    if not train_dir.is_dir():
        raise FileNotFoundError(
            f"no image folder at {root}: expected {root}/train/<class>/<images> "
            f"(and optionally {root}/val/<class>/<images>)"
        )
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir() and d.name != "val")
    files = {name: _image_files(train_dir / name) for name in classes}
    classes = [name for name in classes if files[name]]
    if not classes:
        raise FileNotFoundError(
            f"no class folders with images ({', '.join(IMAGE_EXTENSIONS)}) in {train_dir}"
        )
    if len(classes) == 1:
        raise ValueError(
            f"{train_dir} has one class folder with images ({classes[0]!r}); a classifier needs "
            f"at least two: {root}/train/<class>/<images>"
        )
    val_dir = root / "val"
    if val_dir.is_dir():
        unknown = sorted(d.name for d in val_dir.iterdir() if d.is_dir() and d.name not in classes)
        if unknown:
            raise ValueError(
                f"{val_dir} has class folders missing from the training split: {unknown[:5]}"
            )
        if split == "train":
            chosen = {name: files[name] for name in classes}
        else:
            chosen = {
                name: _image_files(val_dir / name) if (val_dir / name).is_dir() else []
                for name in classes
            }
    else:
        generator = torch.Generator().manual_seed(seed)
        chosen = {}
        for name in classes:
            order = torch.randperm(len(files[name]), generator=generator).tolist()
            held = max(1, round(len(order) * test_fraction)) if len(order) >= 2 else 0
            picked = order[:held] if split == "test" else order[held:]
            chosen[name] = [files[name][i] for i in sorted(picked)]
    paths = [path for name in classes for path in chosen[name]]
    labels = [label for label, name in enumerate(classes) for _ in chosen[name]]
    if not paths and split == "test" and not val_dir.is_dir():
        raise FileNotFoundError(
            f"no class has two images to hold one out for testing in {train_dir}; add "
            f"images or a {root}/val/<class>/<images> folder"
        )
    if not paths:
        raise FileNotFoundError(f"the {split} split of {root} holds no images")
    return paths, labels, classes


class MissingMaskError(FileNotFoundError):
    """An image without its mask; ``masks_root`` is the mask folder that lacks it."""

    def __init__(self, message: str, masks_root: Path) -> None:
        super().__init__(message)
        self.masks_root = masks_root


def mask_files(paths: Sequence[Path], root: str | Path, masks_root: str | Path) -> list[Path]:
    """The mask file of each image: the image's path relative to ``root``, under
    ``masks_root``, with any image extension; each checked to exist and to have its image's
    size (file headers only).

    Raises:
        MissingMaskError: an image has no mask (naming the image and where its mask should be).
        ValueError: a mask's size differs from its image's (naming both files).

    Example:
        >>> mask_files([Path("/data/train/cat/1.jpg")], "/data", "/nonexistent")
        Traceback (most recent call last):
        ...
        explainaug.data.image_folder.MissingMaskError: no mask for image /data/train/cat/1.jpg: expected /nonexistent/train/cat/1.<png, jpg, jpeg, bmp, ppm, pgm, tif, tiff, webp>
    """
    root, masks_root = Path(root), Path(masks_root)
    listed: dict[Path, dict[str, Path]] = {}
    found = []
    for path in paths:
        relative = path.relative_to(root)
        folder = masks_root / relative.parent
        if folder not in listed:
            files = _image_files(folder) if folder.is_dir() else []
            listed[folder] = {file.stem: file for file in reversed(files)}
        mask = listed[folder].get(relative.stem)
        if mask is None:
            formats = ", ".join(extension[1:] for extension in IMAGE_EXTENSIONS)
            raise MissingMaskError(
                f"no mask for image {path}: expected {folder / relative.stem}.<{formats}>",
                masks_root,
            )
        with Image.open(path) as image, Image.open(mask) as drawn:
            if image.size != drawn.size:
                raise ValueError(
                    f"mask {mask} is {drawn.size[0]}x{drawn.size[1]} but its image {path} is "
                    f"{image.size[0]}x{image.size[1]} (width x height); masks must have their "
                    "image's size"
                )
        found.append(mask)
    return found


def _decode(paths: Sequence[Path], size: Size) -> Tensor:
    return torch.stack([fit_image(read_image(p), size) for p in paths])


def _train_stats(
    root: Path, size: Size, test_fraction: float, seed: int, decoded: Tensor | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean/std of (a seeded sample of at most ``STATS_IMAGES``) training images."""
    paths = folder_split(root, "train", test_fraction=test_fraction, seed=seed)[0]
    picked = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed))
    picked = picked[:STATS_IMAGES].sort().values
    sample = decoded[picked] if decoded is not None else _decode([paths[i] for i in picked], size)
    return channel_stats(sample)


def image_folder(
    root: str | Path,
    split: str = "train",
    size: Size = 224,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    lazy: bool | None = None,
    device: str | torch.device | None = None,
    masks: str | Path | None = None,
    cue_masks: str | Path | None = None,
) -> ImageTensorDataset | ImageFileDataset:
    """One split of your own images in ImageFolder layout (see the module docstring).

    Args:
        root: the folder holding ``train/`` (and optionally ``val/``).
        split: ``"train"`` or ``"test"`` (``val/``, or the held-out share of ``train/``).
        size: output side (or ``(height, width)``); images are resized to cover it, then
            center-cropped.
        test_fraction: fraction of every class held out as ``test`` when there is no ``val/``.
        seed: seed of that held-out choice and of the sample behind ``mean``/``std``.
        lazy: ``False`` decodes every image once into a uint8 :class:`ImageTensorDataset` (for
            ``DeviceLoader``); ``True`` keeps files on disk, decoded on access (an
            :class:`ImageFileDataset` for ``DataLoader`` workers); ``None`` chooses: eager
            when the uint8 images take at most a quarter of the free memory of ``device``.
        device: where the data will live, for ``lazy=None`` (default: CUDA if available).
        masks: a folder of object masks parallel to ``root`` (see the module docstring).
        cue_masks: a folder of cue masks (what must not matter) laid out as ``masks``, which
            it needs.

    Returns:
        The dataset; ``mean``/``std`` are those of the training images (of a seeded sample of
        at most ``STATS_IMAGES`` of them), ``classes`` the class folder names.

    Example:
        >>> image_folder("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: no image folder at /nonexistent: ...
    """
    root = Path(root)
    height, width = pair(size)
    paths, labels, classes = folder_split(root, split, test_fraction=test_fraction, seed=seed)
    if cue_masks is not None and masks is None:
        raise ValueError("cue_masks needs masks too (the object masks)")
    found = [mask_files(paths, root, folder) for folder in (masks, cue_masks) if folder is not None]
    if lazy is None:
        from explainaug.data.device_loader import fits_on_device

        needed = len(paths) * 3 * height * width
        lazy = not fits_on_device(needed, device=device)
        where = "stays on the device (DeviceLoader)"
        if lazy:
            where = "is decoded in DataLoader workers"
        source = "train/"
        if split == "test":
            source = (
                "val/"
                if (root / "val").is_dir()
                else f"held out from train/ ({test_fraction:.0%}: there is no val/)"
            )
        logger.info(
            "image folder %s, %s split (%s): %d images, 3x%dx%d uint8 = %.1f MiB: %s",
            root,
            split,
            source,
            len(paths),
            height,
            width,
            needed / 2**20,
            where,
        )
    images = None if lazy else _decode(paths, (height, width))
    mean, std = _train_stats(
        root, (height, width), test_fraction, seed, images if split == "train" else None
    )
    if lazy:
        return ImageFileDataset(
            paths,
            labels,
            mean=mean,
            std=std,
            classes=classes,
            size=(height, width),
            **dict(zip(("masks", "cue_masks"), found, strict=False)),
        )
    decoded = [torch.stack([read_mask(f, (height, width)) for f in files]) for files in found]
    return ImageTensorDataset(
        images,
        torch.as_tensor(labels),
        *decoded[:1],
        cue_masks=decoded[1] if len(decoded) > 1 else None,
        mean=mean,
        std=std,
        classes=classes,
    )
