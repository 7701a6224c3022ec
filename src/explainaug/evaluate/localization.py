"""Localization of saliency maps against ground-truth object masks (SISE / IG-CAM definitions).

With the map ``S >= 0`` at image resolution (lower-resolution maps are upsampled bilinearly) and
the object mask ``G`` of ``n`` pixels, per image:

* **EBPG** (energy-based pointing game) ``= sum(S * G) / sum(S)``; an all-zero map scores 0.
* **IoU** of the top-``top`` binarised map with ``G``: ``S`` is kept where it is strictly greater
  than its ``(floor(top * n) + 1)``-th largest value (so at most ``floor(top * n)`` pixels).
* **Bbox score** (Schulz et al.): with ``N = |G|``, the fraction of the ``N`` most salient pixels
  that fall inside ``G``.
* **Pointing game**: 1 when the map's maximum lies in ``G`` (``pointing_game``), or lies within
  ``pointing_tolerance`` of it (``pointing_game_tolerance``): TorchRay's benchmark counts a hit
  when a pixel of ``G`` is closer than 15 pixels to the maximum, on images the network sees at
  224 pixels on the shorter side; here the tolerance is ``15 / 224`` of the shorter side by
  default (2.1 pixels on 32x32 images), strictly less as TorchRay.

Ties in the ranking (Bbox) and the maximum (pointing game) are broken at random by the rule the
training augmentations use, from a generator seeded with ``seed``: a constant map points at a
uniformly random pixel, not at the top-left corner.

Each metric is averaged over images (``miou`` is the mean IoU). Images are float in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypedDict

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from explainaug._shared import eval_mode
from explainaug._validation import check_fraction
from explainaug.evaluate._maps import (
    check_explainer,
    check_loader_target,
    descending_rank,
    explain_flat,
    seeded_generator,
)
from explainaug.evaluate._predict import iterate_batches, model_device
from explainaug.explain import Explainer

if TYPE_CHECKING:
    from explainaug.evaluate.report import Job

POINTING_TOLERANCE = 15 / 224
"""TorchRay's pointing-game tolerance, 15 pixels, as a fraction of its 224-pixel input side."""


def check_masks(masks: Tensor | None, x: Tensor) -> Tensor:
    """Object masks for ``x`` as bool ``[B, H*W]``: shape ``[B, 1, H, W]`` or ``[B, H, W]``,
    bool or 0/1 values, none empty.

    Example:
        >>> check_masks(torch.ones(2, 4, 4), torch.zeros(2, 3, 4, 4)).shape
        torch.Size([2, 16])
    """
    if masks is None:
        raise ValueError("localization needs object masks: the loader must yield (x, y, masks)")
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3 or masks.shape[0] != x.shape[0] or masks.shape[1:] != x.shape[2:]:
        raise ValueError(
            f"masks must have shape [B, 1, H, W] or [B, H, W] matching the images "
            f"{tuple(x.shape)}, got {tuple(masks.shape)}"
        )
    if masks.dtype != torch.bool:
        if not bool(((masks == 0) | (masks == 1)).all()):
            raise ValueError("masks must be bool or hold only 0 and 1")
        masks = masks == 1
    flat = masks.flatten(1)
    if not bool(flat.any(dim=1).all()):
        raise ValueError("every mask must mark at least one pixel; got an empty mask")
    return flat


def energy_share(maps: Tensor, masks: Tensor) -> Tensor:
    """Per-image share of the saliency energy inside the mask (EBPG), ``sum(S * G) / sum(S)``.

    Flat maps ``[B, N]`` (>= 0) and bool masks ``[B, N]``; an all-zero map scores 0.

    Example:
        >>> energy_share(torch.tensor([[1.0, 3.0], [0.0, 0.0]]), torch.tensor([[True, False]] * 2))
        tensor([0.2500, 0.0000])
    """
    energy = maps.sum(dim=1)
    share = (maps * masks.to(maps.dtype)).sum(dim=1) / energy
    return torch.where(energy > 0, share, torch.zeros_like(share))


def localization_scores(
    maps: Tensor,
    masks: Tensor,
    top: float = 0.2,
    generator: torch.Generator | None = None,
    *,
    size: tuple[int, int] | None = None,
    pointing_tolerance: float = POINTING_TOLERANCE,
) -> dict[str, Tensor]:
    """Per-image EBPG, IoU, Bbox and pointing-game scores of flat maps ``[B, N]`` vs bool masks.

    ``generator`` draws the random tie-breaking of the ranking (``None``: torch's global one);
    ``size`` is the image's ``(H, W)`` (``None``: square, else one row); ``pointing_tolerance``
    is a fraction of its shorter side.

    Example:
        >>> maps = torch.tensor([[0.0, 1.0, 3.0, 0.0]])
        >>> masks = torch.tensor([[False, False, True, True]])
        >>> scores = localization_scores(maps, masks, top=0.25)
        >>> {k: v.tolist() for k, v in scores.items()}  # doctest: +NORMALIZE_WHITESPACE
        {'ebpg': [0.75], 'iou': [0.5], 'bbox': [0.5], 'pointing_game': [1.0],
         'pointing_game_tolerance': [1.0]}
    """
    n = maps.shape[1]
    ebpg = energy_share(maps, masks)
    threshold = maps.topk(int(top * n) + 1, dim=1).values[:, -1:]
    binary = maps > threshold
    iou = (binary & masks).sum(dim=1) / (binary | masks).sum(dim=1)
    area = masks.sum(dim=1)
    rank = descending_rank(maps, generator)
    bbox = ((rank < area[:, None]) & masks).sum(dim=1) / area
    peak = rank.argmin(dim=1, keepdim=True)
    pointing = masks.gather(1, peak)[:, 0]
    return {
        "ebpg": ebpg,
        "iou": iou.to(maps.dtype),
        "bbox": bbox.to(maps.dtype),
        "pointing_game": pointing.to(maps.dtype),
        "pointing_game_tolerance": _near_hits(peak, masks, size, pointing_tolerance).to(maps.dtype),
    }


def _near_hits(
    peak: Tensor, masks: Tensor, size: tuple[int, int] | None, tolerance: float
) -> Tensor:
    """TorchRay's hit: some mask pixel lies closer than ``tolerance * min(H, W)`` to the peak."""
    n = masks.shape[1]
    if size is None:
        side = math.isqrt(n)
        size = (side, side) if side * side == n else (1, n)
    height, width = size
    radius = tolerance * min(height, width)
    rows = torch.arange(height, device=masks.device).repeat_interleave(width)
    columns = torch.arange(width, device=masks.device).repeat(height)
    distance = (rows - rows[peak]) ** 2 + (columns - columns[peak]) ** 2  # [B, N]
    return (masks & (distance < radius**2)).any(dim=1)


class LocalizationResult(TypedDict):
    """What ``localization`` returns: mean scores over ``n_images`` images."""

    ebpg: float
    miou: float
    bbox: float
    pointing_game: float
    pointing_game_tolerance: float
    pointing_tolerance_pixels: float
    n_images: int


def localization(
    model: nn.Module,
    explainer: Explainer,
    loader: Iterable,
    *,
    top: float = 0.2,
    target: str | None = "label",
    pointing_tolerance: float = POINTING_TOLERANCE,
    seed: int = 0,
    progress: bool = False,
) -> LocalizationResult:
    """EBPG, mIoU, Bbox score and pointing game of ``explainer`` over a loader with masks.

    Args:
        loader: ``(x, y, masks)`` batches; masks bool or 0/1, ``[B, 1, H, W]`` or ``[B, H, W]``
            at image resolution, marking the labelled object.
        top: fraction of pixels kept by the IoU binarisation.
        target: explain the ``"label"`` (the masked object's class) or the predicted class
            (None, as an explainer's ``target``).
        pointing_tolerance: the tolerant pointing game's radius, a fraction of the shorter
            image side (TorchRay's 15 pixels at 224).
        seed: seeds the random tie-breaking of the ranking.

    Example:
        >>> from explainaug.explain import Saliency
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> masks = torch.zeros(2, 1, 16, 16, dtype=torch.bool)
        >>> masks[:, :, 4:12, 4:12] = True
        >>> loader = [(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]), masks)]
        >>> sorted(localization(model, Saliency(model), loader))  # doctest: +NORMALIZE_WHITESPACE
        ['bbox', 'ebpg', 'miou', 'n_images', 'pointing_game', 'pointing_game_tolerance',
         'pointing_tolerance_pixels']
    """
    check_explainer(explainer, model)
    check_fraction(top, "top")
    check_loader_target(target)
    check_fraction(pointing_tolerance, "pointing_tolerance", closed=True)
    device = model_device(model)
    generator = seeded_generator(seed, device)
    scores: dict[str, list[Tensor]] = {}
    size = (0, 0)
    with eval_mode(model):
        for x, y, masks, _ in tqdm(
            iterate_batches(loader, device), desc="localization", disable=not progress, leave=False
        ):
            flat_masks = check_masks(masks, x)
            if target is None:
                with torch.no_grad():
                    y = model(x).argmax(dim=1)
            maps = explain_flat(explainer, x, y)
            size = (int(x.shape[-2]), int(x.shape[-1]))
            batch_scores = localization_scores(
                maps, flat_masks, top, generator, size=size, pointing_tolerance=pointing_tolerance
            )
            for name, value in batch_scores.items():
                scores.setdefault(name, []).append(value)
    means = {name: float(torch.cat(values).mean()) for name, values in scores.items()}
    return {
        "ebpg": means["ebpg"],
        "miou": means["iou"],
        "bbox": means["bbox"],
        "pointing_game": means["pointing_game"],
        "pointing_game_tolerance": means["pointing_game_tolerance"],
        "pointing_tolerance_pixels": pointing_tolerance * min(size),
        "n_images": len(torch.cat(scores["ebpg"])),
    }


def run_in_report(job: Job) -> dict:
    """The ``localization`` evaluator of ``evaluate.report`` (on ``job.mask_loader`` if given)."""
    assert job.explainer is not None
    loader = job.mask_loader if job.mask_loader is not None else job.loader
    return localization(
        job.model,
        job.explainer(job.model),
        loader,
        seed=job.options.seed,
        progress=job.options.progress,
    )
