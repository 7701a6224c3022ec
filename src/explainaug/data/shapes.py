"""A synthetic shape-classification set with a ground-truth object mask per image.

Each image shows one object (circle, square, triangle, cross, ring or bar) at a random position,
scale, rotation and colour on a cluttered background. The class depends only on the object's
outline: colour, position and size are drawn independently of the class, so a model must look at
the object, which makes localization metrics (saliency inside the mask) meaningful.

The clutter never forms a class shape: soft Gaussian blobs (no hard edge), 1-pixel lines that cross
the whole image, smooth low-frequency shading and pixel noise, all of low contrast (at most about
0.15) while the object differs from the background by at least about 0.3 in every channel.
Generation is vectorised over images with coordinate grids; only the shape classes are looped.

With ``cue_correlation=p`` each image also carries a spurious cue, a small square patch of pure
colour placed where it never overlaps the object: with probability ``p`` its colour is the
image's own class's cue colour (``CUE_COLOURS``), otherwise that of a uniformly drawn other class
(p=1: always aligned, p=0: always conflicting, p=1/K: independent of the class). Cues are drawn
from a stream of their own after the images, so the objects and backgrounds are those of the
same arguments without a cue, and two values of ``p`` differ only in the cues' colours.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from explainaug._validation import check_count, check_fraction, check_split
from explainaug.data.tensor_dataset import ImageTensorDataset, channel_stats

SHAPE_NAMES = ("circle", "square", "triangle", "cross", "ring", "bar")

# Class k's cue colour (RGB in [0, 1]) for the shortcut testbed (``cue_correlation``).
CUE_COLOURS = (
    (1.0, 0.0, 0.0),
    (0.0, 1.0, 0.0),
    (0.0, 0.0, 1.0),
    (1.0, 1.0, 0.0),
    (1.0, 0.0, 1.0),
    (0.0, 1.0, 1.0),
)

_CHUNK = 1024  # images generated at once; bounds memory for large n
_CUE_STREAM = 1  # tells the cue generator's seed apart from the images'


def _triangle(u: Tensor, v: Tensor) -> Tensor:
    inside = torch.ones_like(u, dtype=torch.bool)
    for k in range(3):
        normal = math.pi / 2 + 2 * math.pi * k / 3
        inside &= u * math.cos(normal) + v * math.sin(normal) <= 0.5
    return inside


# Each predicate takes the object frame (u, v), in units of the object radius, rotated.
_SHAPES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "circle": lambda u, v: u * u + v * v <= 1.0,
    "square": lambda u, v: torch.maximum(u.abs(), v.abs()) <= 0.8,
    "triangle": _triangle,
    "cross": lambda u, v: (
        ((u.abs() <= 0.28) & (v.abs() <= 0.95)) | ((v.abs() <= 0.28) & (u.abs() <= 0.95))
    ),
    "ring": lambda u, v: ((u * u + v * v) <= 1.0) & ((u * u + v * v) >= 0.55**2),
    "bar": lambda u, v: (u.abs() <= 1.0) & (v.abs() <= 0.3),
}


def _uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen)


def _background(n: int, size: int, grid_x: Tensor, grid_y: Tensor, gen: torch.Generator) -> Tensor:
    base = _uniform((n, 3, 1, 1), 0.25, 0.75, gen)
    shading = F.interpolate(
        _uniform((n, 3, 4, 4), -0.06, 0.06, gen),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
    )
    blobs_at = _uniform((n, 3, 2, 1, 1), 0.0, size, gen)  # 3 blobs, (x, y) centres
    blob_sigma = _uniform((n, 3, 1, 1), 0.06 * size, 0.15 * size, gen)
    blob_amp = _uniform((n, 3, 3), -0.1, 0.1, gen)  # per blob, per channel
    dist2 = (grid_x - blobs_at[:, :, 0]) ** 2 + (grid_y - blobs_at[:, :, 1]) ** 2
    blobs = torch.einsum("nbc,nbhw->nchw", blob_amp, torch.exp(-dist2 / (2 * blob_sigma**2)))
    line_angle = _uniform((n, 2, 1, 1), 0.0, math.pi, gen)  # 2 lines through the image
    line_point = _uniform((n, 2, 2, 1, 1), 0.0, size, gen)
    distance = (
        (grid_x - line_point[:, :, 0]) * torch.sin(line_angle)
        - (grid_y - line_point[:, :, 1]) * torch.cos(line_angle)
    ).abs()
    line_amp = _uniform((n, 2, 3), -0.1, 0.1, gen)
    lines = torch.einsum("nlc,nlhw->nchw", line_amp, (distance <= 0.5).float())
    return base + shading + blobs + lines


def _generate(
    n: int, size: int, num_classes: int, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    labels = (torch.arange(n) % num_classes)[torch.randperm(n, generator=gen)]
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    grid_y, grid_x = torch.meshgrid(centres, centres, indexing="ij")
    images, masks = [], []
    for start in range(0, n, _CHUNK):
        chunk = labels[start : start + _CHUNK]
        m = chunk.shape[0]
        background = _background(m, size, grid_x, grid_y, gen)
        radius = _uniform((m, 1, 1), 0.22 * size, 0.36 * size, gen)
        cx = radius + torch.rand((m, 1, 1), generator=gen) * (size - 2 * radius)
        cy = radius + torch.rand((m, 1, 1), generator=gen) * (size - 2 * radius)
        angle = _uniform((m, 1, 1), 0.0, 2 * math.pi, gen)
        dx, dy = grid_x - cx, grid_y - cy
        u = (dx * torch.cos(angle) + dy * torch.sin(angle)) / radius
        v = (-dx * torch.sin(angle) + dy * torch.cos(angle)) / radius
        mask = torch.zeros((m, size, size), dtype=torch.bool)
        for k, name in enumerate(SHAPE_NAMES[:num_classes]):
            chosen = chunk == k
            mask[chosen] = _SHAPES[name](u[chosen], v[chosen])
        mask = mask.unsqueeze(1)
        # The object moves away from the background's mean level, so its contrast is >= ~0.3.
        direction = torch.where(background.mean(dim=(1, 2, 3), keepdim=True) < 0.5, 1.0, -1.0)
        colour = background.mean(dim=(2, 3), keepdim=True) + direction * _uniform(
            (m, 3, 1, 1), 0.3, 0.5, gen
        )
        image = torch.where(mask, colour, background)
        image = image + 0.02 * torch.randn(image.shape, generator=gen)
        images.append((image.clamp(0, 1) * 255).round().to(torch.uint8))
        masks.append(mask)
    return torch.cat(images), labels, torch.cat(masks)


def _generator(seed: int, train: bool) -> torch.Generator:
    return torch.Generator().manual_seed(2 * seed + (0 if train else 1))


def _cue_generator(seed: int, train: bool) -> torch.Generator:
    """The cues' own stream: drawing cues leaves the images' stream untouched."""
    state = np.random.SeedSequence((seed, int(train), _CUE_STREAM)).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


def cue_size(size: int) -> int:
    """Side in pixels of the cue patch of ``size``-pixel images (an eighth, at least 2).

    Example:
        >>> cue_size(32), cue_size(16)
        (4, 2)
    """
    return max(2, round(size / 8))


def _add_cues(
    images: Tensor,
    labels: Tensor,
    masks: Tensor,
    num_classes: int,
    correlation: float,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Paint one cue patch per image outside its object; return ``(images, cue masks)``.

    The patch's top-left corner is drawn uniformly among the positions whose patch holds no
    object pixel (found with a max-pool of the object mask over the patch window).
    """
    n, _, size, _ = images.shape
    side = cue_size(size)
    corners = size - side + 1
    palette = (torch.tensor(CUE_COLOURS) * 255).round().to(torch.uint8)
    rows = torch.arange(size)
    images, cue_masks = images.clone(), []
    for start in range(0, n, _CHUNK):
        chunk_masks = masks[start : start + _CHUNK]
        m = chunk_masks.shape[0]
        touches = F.max_pool2d(chunk_masks.float(), side, stride=1).flatten(1) > 0
        score = torch.rand((m, corners * corners), generator=gen).masked_fill(touches, -1.0)
        aligned = torch.rand(m, generator=gen) < correlation
        other = torch.randint(1, num_classes, (m,), generator=gen)
        if bool(touches.all(dim=1).any()):
            raise RuntimeError("an object leaves no room for the cue; use larger images")
        corner = score.argmax(dim=1)
        top, left = corner // corners, corner % corners
        inside_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
        inside_cols = (rows >= left[:, None]) & (rows < left[:, None] + side)
        cue = (inside_rows[:, :, None] & inside_cols[:, None, :]).unsqueeze(1)
        chunk_labels = labels[start : start + _CHUNK]
        cue_class = torch.where(aligned, chunk_labels, (chunk_labels + other) % num_classes)
        colour = palette[cue_class][:, :, None, None]
        chunk = images[start : start + _CHUNK]
        images[start : start + _CHUNK] = torch.where(cue, colour, chunk)
        cue_masks.append(cue)
    return images, torch.cat(cue_masks)


def shapes(
    n: int = 2000,
    size: int = 32,
    *,
    num_classes: int = 4,
    split: str = "train",
    seed: int = 0,
    cue_correlation: float | None = None,
) -> ImageTensorDataset:
    """Generate the shapes dataset: ``n`` RGB images with labels and object masks.

    Args:
        n: number of images (classes are balanced: counts differ by at most one).
        size: image height and width in pixels, >= 16.
        num_classes: number of shape classes, 2..6, taken in the order of ``SHAPE_NAMES``.
        split: ``"train"`` or ``"test"`` (drawn from a different seed).
        seed: the same seed and arguments always give the same images.
        cue_correlation: None (no cue), or the probability ``p`` in [0, 1] that an image's cue
            has its own class's colour rather than another class's (see the module docstring).

    Returns:
        An :class:`ImageTensorDataset` with bool masks ``[n, 1, size, size]`` and, with a cue,
        bool ``cue_masks`` of the same shape; ``mean`` and ``std`` are those of the training
        split with the same arguments.

    Example:
        >>> ds = shapes(n=8, size=16)
        >>> image, label, mask = ds[0]
        >>> tuple(image.shape), tuple(mask.shape), ds.classes
        ((3, 16, 16), (1, 16, 16), ['circle', 'square', 'triangle', 'cross'])
        >>> cued = shapes(n=8, size=16, cue_correlation=1.0)
        >>> int(cued.cue_masks[0].sum()), bool((cued.cue_masks & cued.masks).any())
        (4, False)
    """
    check_count(n, "n")
    train = check_split(split) == "train"
    check_count(size, "size", minimum=16)
    if not isinstance(num_classes, int) or not 2 <= num_classes <= len(SHAPE_NAMES):
        raise ValueError(
            f"num_classes must be an int in [2, {len(SHAPE_NAMES)}], got {num_classes!r}"
        )
    if cue_correlation is not None:
        check_fraction(cue_correlation, "cue_correlation", closed=True)

    def generate(train: bool) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        images, labels, masks = _generate(n, size, num_classes, _generator(seed, train))
        if cue_correlation is None:
            return images, labels, masks, None
        gen = _cue_generator(seed, train)
        images, cue_masks = _add_cues(images, labels, masks, num_classes, cue_correlation, gen)
        return images, labels, masks, cue_masks

    images, labels, masks, cue_masks = generate(train)
    mean, std = channel_stats(images if train else generate(True)[0])
    return ImageTensorDataset(
        images,
        labels,
        masks,
        cue_masks=cue_masks,
        mean=mean,
        std=std,
        classes=list(SHAPE_NAMES[:num_classes]),
    )
