"""Shortcut reliance: accuracy and saliency on cue-aligned vs cue-conflicting data.

A shortcut testbed (Ross et al. 2017, "Right for the right reasons"; Colored MNIST; Waterbirds)
plants a spurious cue that predicts the class in training. On test images whose cue shows the
image's own class (*aligned*) a shortcut model is right; on images whose cue shows another class
(*conflicting*) it fails. Reported per test set: top-1 accuracy and, with the map ``S >= 0`` at
image resolution, the energy-based share of saliency (as EBPG) on the cue mask ``C`` and on the
object mask ``G``: ``sum(S * C) / sum(S)`` and ``sum(S * G) / sum(S)``, averaged over images.
``gap`` is aligned minus conflicting accuracy. ``cue_area`` and ``object_area`` (mean fraction of
pixels) are the shares a uniform map would get: the chance level of each share.

``explainaug.data.shapes(..., cue_correlation=p)`` builds such data: ``p=1`` gives the aligned
test set, ``p=0`` the conflicting one, and ``DeviceLoader(..., cue_masks=True)`` hands out
``(x, y, masks, cue_masks)`` batches. Images are float in [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from explainaug._shared import eval_mode
from explainaug.evaluate._maps import (
    check_explainer,
    check_loader_target,
    explain_flat,
    explained_classes,
)
from explainaug.evaluate._predict import iterate_batches, model_device
from explainaug.evaluate.localization import check_masks, energy_share
from explainaug.explain import Explainer

if TYPE_CHECKING:
    from explainaug.evaluate.report import Job

SHORTCUT_SETS = ("aligned", "conflicting")


def _cued_batches(
    loader: Iterable, device: torch.device, name: str
) -> Iterator[tuple[Tensor, ...]]:
    """``(x, y, flat object masks, flat cue masks)`` per batch, checked, on ``device``."""
    if not isinstance(loader, Iterable):
        raise TypeError(
            f"{name} must be an iterable of (x, y, masks, cue_masks) batches, "
            f"got {type(loader).__name__}"
        )
    for x, y, masks, cue_masks in iterate_batches(loader, device, name):
        if masks is None or cue_masks is None:
            raise ValueError(
                f"{name} must yield (x, y, masks, cue_masks) batches (DeviceLoader(..., "
                "cue_masks=True))"
            )
        yield x, y, check_masks(masks, x), check_masks(cue_masks, x)


def _measure(
    model: nn.Module,
    explainer: Explainer,
    loader: Iterable,
    name: str,
    target: str | None,
    progress: bool,
) -> dict:
    device = model_device(model)
    columns: dict[str, list[Tensor]] = {}
    for x, y, masks, cue_masks in tqdm(
        _cued_batches(loader, device, f"{name}_loader"),
        desc=name,
        disable=not progress,
        leave=False,
    ):
        with torch.no_grad():
            logits = model(x)
        maps = explain_flat(explainer, x, explained_classes(target, logits, y))
        values = {
            "correct": (logits.argmax(dim=1) == y).float(),
            "cue_share": energy_share(maps, cue_masks),
            "object_share": energy_share(maps, masks),
            "cue_area": cue_masks.float().mean(dim=1),
            "object_area": masks.float().mean(dim=1),
        }
        for key, value in values.items():
            columns.setdefault(key, []).append(value)
    means = {key: float(torch.cat(values).mean()) for key, values in columns.items()}
    return {
        "accuracy": means.pop("correct"),
        **means,
        "n_images": sum(len(values) for values in columns["correct"]),
    }


def shortcut(
    model: nn.Module,
    explainer: Explainer,
    aligned_loader: Iterable,
    conflicting_loader: Iterable,
    *,
    target: str | None = None,
    progress: bool = False,
) -> dict:
    """Accuracy and saliency shares on the cue and the object, on aligned and conflicting data.

    The model runs in eval mode (its modes are restored).

    Args:
        model: classifier returning logits; images in [0, 1].
        explainer: an explainer of ``model``.
        aligned_loader: batches ``(x, y, masks, cue_masks)`` whose cues show the image's class
            (``shapes(..., cue_correlation=1.0)``); masks bool or 0/1, ``[B, 1, H, W]``.
        conflicting_loader: the same kind of batches with cues of another class
            (``cue_correlation=0.0``).
        target: explain the predicted class (None, the default: the evidence behind the decision the
            model took, which on conflicting images is where a shortcut shows) or the ``"label"``.
        progress: show tqdm bars over the loaders.

    Returns:
        ``{"aligned": {...}, "conflicting": {...}, "gap": float}``; each set holds
        ``accuracy``, ``cue_share``, ``object_share``, ``cue_area``, ``object_area`` (floats) and
        ``n_images``.

    Example:
        >>> from explainaug.data import DeviceLoader, shapes
        >>> from explainaug.explain import GradCAM
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=4, width=4)
        >>> def loader(p):
        ...     data = shapes(n=8, size=16, split="test", cue_correlation=p)
        ...     return DeviceLoader(data, 8, shuffle=False, device="cpu", cue_masks=True)
        >>> result = shortcut(model, GradCAM(model), loader(1.0), loader(0.0))
        >>> sorted(result["aligned"]), result["gap"] == (
        ...     result["aligned"]["accuracy"] - result["conflicting"]["accuracy"])
        (['accuracy', 'cue_area', 'cue_share', 'n_images', 'object_area', 'object_share'], True)
    """
    check_explainer(explainer, model)
    check_loader_target(target)
    loaders = dict(zip(SHORTCUT_SETS, (aligned_loader, conflicting_loader), strict=True))
    with eval_mode(model):
        result: dict = {
            name: _measure(model, explainer, loader, name, target, progress)
            for name, loader in loaders.items()
        }
    result["gap"] = result["aligned"]["accuracy"] - result["conflicting"]["accuracy"]
    return result


def run_in_report(job: Job) -> dict:
    """The ``shortcut`` evaluator of ``evaluate.report``, on ``job.shortcut_loaders``."""
    assert job.explainer is not None and job.shortcut_loaders is not None
    return shortcut(
        job.model, job.explainer(job.model), *job.shortcut_loaders, progress=job.options.progress
    )
