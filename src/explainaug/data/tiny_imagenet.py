"""Tiny ImageNet (200 classes, 64x64 RGB) from the standard ``tiny-imagenet-200`` layout.

Layouts read::

    tiny-imagenet-200/wnids.txt                     class order (one WordNet id per line)
    tiny-imagenet-200/train/<wnid>/images/*.JPEG
    tiny-imagenet-200/val/images/*.JPEG + val/val_annotations.txt   (as downloaded)
    tiny-imagenet-200/val/<wnid>/images/*.JPEG      (after ExCon's utils/val_format.py)

The test split has no labels and is not read. Labels follow the order of ``wnids.txt``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from explainaug._validation import check_split
from explainaug.data.image_files import ImageFileDataset, read_images
from explainaug.data.tensor_dataset import ImageTensorDataset

TINY_IMAGENET_MEAN = (0.4802, 0.4481, 0.3975)
TINY_IMAGENET_STD = (0.2302, 0.2265, 0.2262)
TINY_IMAGENET_FOLDER = "tiny-imagenet-200"


def _find_base(root: Path) -> Path:
    for base in (root / TINY_IMAGENET_FOLDER, root):
        if (base / "wnids.txt").is_file():
            return base
    raise FileNotFoundError(
        f"Tiny ImageNet not found: neither {root / TINY_IMAGENET_FOLDER / 'wnids.txt'} nor "
        f"{root / 'wnids.txt'} exists; download and unzip "
        "http://cs231n.stanford.edu/tiny-imagenet-200.zip into root"
    )


def _class_folders(split_dir: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    missing = [w for w in wnids if not (split_dir / w / "images").is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} class folders missing in {split_dir} "
            f"(expected <wnid>/images/ for every wnid), e.g. {missing[:3]}"
        )
    paths, labels = [], []
    for label, wnid in enumerate(wnids):
        files = sorted((split_dir / wnid / "images").glob("*.JPEG"))
        paths += files
        labels += [label] * len(files)
    return paths, labels


def _annotated_val(val_dir: Path, wnids: list[str]) -> tuple[list[Path], list[int]]:
    index = {wnid: i for i, wnid in enumerate(wnids)}
    paths, labels = [], []
    for line_no, line in enumerate((val_dir / "val_annotations.txt").read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise ValueError(
                f"{val_dir / 'val_annotations.txt'} line {line_no}: expected "
                f"'<file>\\t<wnid>...' with a wnid from wnids.txt, got {line!r}"
            )
        path = val_dir / "images" / fields[0]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is listed in val_annotations.txt but missing")
        paths.append(path)
        labels.append(index[fields[1]])
    return paths, labels


def tiny_imagenet(
    root: str | Path, split: str = "train", *, lazy: bool = False
) -> ImageTensorDataset | ImageFileDataset:
    """Tiny ImageNet's train split (100,000 images) or, as ``"test"``, its val folder (10,000
    labelled images, the usual test set; its own test folder has no labels).

    ``root`` holds ``tiny-imagenet-200`` (or is that folder). ``lazy`` keeps the JPEGs on disk
    and decodes on access (an :class:`ImageFileDataset`); else everything is decoded into a uint8
    :class:`ImageTensorDataset` (about 1.2 GB for train). Either has Tiny ImageNet's training
    ``mean``/``std`` and the wnids as ``classes``.

    Example:
        >>> tiny_imagenet("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FileNotFoundError: Tiny ImageNet not found: ...
    """
    check_split(split)
    base = _find_base(Path(root))
    wnids = [w.strip() for w in (base / "wnids.txt").read_text().splitlines() if w.strip()]
    split_dir = base / ("train" if split == "train" else "val")
    if not split_dir.is_dir():
        raise FileNotFoundError(f"Tiny ImageNet split folder {split_dir} does not exist")
    if (
        split == "test"
        and (split_dir / "val_annotations.txt").is_file()
        and (split_dir / "images").is_dir()
    ):
        paths, labels = _annotated_val(split_dir, wnids)
    else:
        paths, labels = _class_folders(split_dir, wnids)
    if not paths:
        raise FileNotFoundError(f"no .JPEG images found in {split_dir}")
    stats = {"mean": TINY_IMAGENET_MEAN, "std": TINY_IMAGENET_STD, "classes": wnids}
    if lazy:
        return ImageFileDataset(paths, labels, **stats)
    return ImageTensorDataset(read_images(paths), torch.as_tensor(labels), **stats)
