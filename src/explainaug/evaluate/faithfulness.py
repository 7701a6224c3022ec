"""Faithfulness of saliency maps: does the model's confidence follow the pixels the map ranks high?

For each image the class ``c`` (the model's prediction by default, or the label with
``target="label"``) is explained and the model's softmax probability ``p_c`` is measured on
perturbed copies of the image (images are float in [0, 1]; models normalise inside). Removed
pixels take the ``fill``, by default the model's normalised zero: the mean of its input
``Normalize`` layer, i.e. the dataset mean colour (0 for a model without one), as the official
ExCon evaluation (``x * mask`` on normalised images) and RISE's deletion (``zeros_like`` of the
normalised image):

* **Keep top ``keep`` (Grad-CAM++, ExCon's ``eval_drop_increase``).** Keep the
  ``int(keep * N)`` most salient pixels (at least 1; ExCon keeps ``int(0.15 * n)``), fill the
  rest, giving ``O = p_c(x_keep)`` against ``Y = p_c(x)``:
  ``average_drop_pct = 100 * mean(max(0, Y - O) / Y)`` (lower is better),
  ``increase_in_confidence_pct = 100 * mean(O > Y)`` (higher is better), and ExCon's
  ``drop_rate = mean(Y > O)`` and ``average_increase = mean(max(0, O - Y) / Y)``.
* **Deletion / insertion (RISE, Petsiuk et al. 2018).** Remove pixels in decreasing saliency
  order in ``deletion_steps`` equal steps (filled), or insert them in that order onto RISE's
  blurred copy of the image (``rise_blur_kernel``: sigma 5 folded into 11x11, zero padding in
  normalised space, i.e. the model's normalised zero here); the AUC of ``p_c`` over the
  fraction of pixels (trapezoid rule). Deletion: lower is better; insertion: higher is better.
  RISE steps 224 pixels at a time on 224x224 images; here ``deletion_steps`` equal steps.
* **EDDA alignment.** Occlude the ``round(occlusion_ratio * N)`` most salient pixels
  (``x_sal``) or least salient pixels (``x_non``), the count ``SaliencyOcclusion`` uses in
  training: salient drop ``SD = mean max(0, Y - p_c(x_sal)) / Y`` (higher is better) and
  non-salient change ``NC = mean |Y - p_c(x_non)| / Y`` (lower is better).

Pixels are chosen by an exact top-k on the map at image resolution (maps of lower resolution
are upsampled bilinearly); ties (e.g. the zero area of a ReLU'd Grad-CAM) are broken at random
by the rule the training augmentations use, from a generator seeded with ``seed``. A pixel is
replaced in all channels. Every perturbed image of a batch is built on the fly and run through
the model in chunks of ``batch_size``; there are no loops over images. Maps with one value
everywhere (degenerate: nothing to rank) are counted and warned about.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from explainaug._shared import eval_mode, image_step_chunks, pixel_counts
from explainaug._validation import check_count, check_fraction
from explainaug.augment.fills import Fill, FillSpec
from explainaug.evaluate._maps import (
    check_explainer,
    check_loader_target,
    descending_rank,
    explain_flat,
    explained_classes,
    seeded_generator,
)
from explainaug.evaluate._predict import iterate_batches, model_device
from explainaug.explain import Explainer
from explainaug.models.normalize import model_mean

logger = logging.getLogger("explainaug")

if TYPE_CHECKING:
    from explainaug.evaluate.report import Job

FillOption = FillSpec | Sequence[float]


def as_fill(fill: FillOption) -> Fill:
    """The augmentations' ``Fill`` for a faithfulness ``fill``: a fill name or number, or
    per-channel values (e.g. the dataset mean, the same as ``Fill("mean", mean=values)``).

    Example:
        >>> as_fill("zero")(torch.ones(1, 3, 2, 2)).item()
        0.0
        >>> as_fill((0.5, 0.25, 1.0))(torch.zeros(1, 3, 2, 2)).flatten().tolist()
        [0.5, 0.25, 1.0]
    """
    if isinstance(fill, (str, int, float)):
        return Fill(fill)
    values = torch.as_tensor(fill, dtype=torch.float32).flatten()
    return Fill(float(values)) if values.numel() == 1 else Fill("mean", mean=values)


def rise_blur_kernel(size: int = 11, sigma: float = 5.0) -> Tensor:
    """RISE's insertion kernel ``gkern(size, sigma)``, float64 ``[size, size]``, summing to 1.

    RISE blurs a centred unit impulse in a ``size x size`` array with
    ``scipy.ndimage.gaussian_filter(impulse, sigma)`` (reflected borders, truncated at 4 sigma):
    the Gaussian's tails beyond the box fold back into it, so at sigma 5 the kernel is much
    flatter than an 11-tap Gaussian.

    Example:
        >>> kernel = rise_blur_kernel()
        >>> kernel.shape, round(float(kernel.sum()), 6)
        (torch.Size([11, 11]), 1.0)
    """
    radius = int(4.0 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1)
    weights = torch.exp(-0.5 * (offsets.double() / sigma) ** 2)
    weights = weights / weights.sum()
    # position i gets weight g(d) from source i - d, when that source reflects onto the centre
    sources = (torch.arange(size)[:, None] - offsets[None, :]).remainder(2 * size)
    reflected = torch.where(sources < size, sources, 2 * size - 1 - sources)
    line = (weights * (reflected == size // 2)).sum(dim=1)
    return torch.outer(line, line)


def blurred_canvas(x: Tensor, pad: Tensor | float = 0.0) -> Tensor:
    """RISE's insertion canvas: ``x`` blurred by ``rise_blur_kernel`` with zero padding in the
    model's normalised space, i.e. padding with its normalised zero ``pad`` (``[1, C, 1, 1]``).

    Example:
        >>> blurred_canvas(torch.ones(1, 3, 8, 8), pad=1.0).allclose(torch.ones(1, 3, 8, 8))
        True
    """
    kernel = rise_blur_kernel().to(x)
    channels = x.shape[1]
    weight = kernel.expand(channels, 1, *kernel.shape)
    blurred = F.conv2d(x - pad, weight, padding=kernel.shape[-1] // 2, groups=channels)
    return blurred + pad


def count(fraction: float, n: int) -> int:
    """Pixels in a fraction of ``n`` for an occlusion: ``round(fraction * n)``, at least 1.

    Example:
        >>> count(0.15, 1024)
        154
    """
    return max(1, int(pixel_counts(fraction, n, 1, "cpu")))


def kept_count(fraction: float, n: int) -> int:
    """Pixels kept by Average Drop / Increase: ``int(fraction * n)`` as ExCon, at least 1.

    Example:
        >>> kept_count(0.15, 1024)
        153
    """
    return max(1, int(fraction * n))


def trapezoid_auc(curves: Tensor) -> Tensor:
    """Area under each row of ``[B, T + 1]``, sampled evenly on [0, 1] (RISE's ``auc``).

    Example:
        >>> trapezoid_auc(torch.tensor([[1.0, 0.5, 0.0]])).tolist()
        [0.5]
    """
    steps = curves.shape[1] - 1
    return (curves.sum(dim=1) - (curves[:, 0] + curves[:, -1]) / 2) / steps


def _perturbation_plan(
    n: int, keep: float, steps: int, ratio: float, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """Each perturbation replaces the pixels of rank in ``[low, high)`` by a canvas (0: fill, 1:
    blur). Order: keep-top, salient occlusion, non-salient occlusion, deletion steps 0..T,
    insertion steps 0..T."""
    removed = [round(step * n / steps) for step in range(steps + 1)]
    k_keep, k_occlude = kept_count(keep, n), count(ratio, n)
    low = [k_keep, 0, n - k_occlude] + [0] * (steps + 1) + removed
    high = [n, k_occlude, n] + removed + [n] * (steps + 1)
    canvas = [0, 0, 0] + [0] * (steps + 1) + [1] * (steps + 1)
    as_tensor = lambda values: torch.tensor(values, device=device)  # noqa: E731
    return as_tensor(low), as_tensor(high), as_tensor(canvas)


def _perturbed_probabilities(
    model: nn.Module,
    x: Tensor,
    rank: Tensor,
    target: Tensor,
    canvases: Tensor,
    plan: tuple[Tensor, Tensor, Tensor],
    batch_size: int,
) -> Tensor:
    """``p_target`` of every perturbation of every image, ``[perturbations, B]``."""
    low, high, canvas_index = plan
    batch = x.shape[0]
    probabilities = []
    for _, image, step in image_step_chunks(
        batch, low.numel(), batch_size, x.device, step_major=True
    ):
        region = (rank[image] >= low[step, None]) & (rank[image] < high[step, None])
        region = region.view(-1, 1, *x.shape[-2:])
        perturbed = torch.where(region, canvases[canvas_index[step], image], x[image])
        logits = model(perturbed)
        probabilities.append(logits.float().softmax(dim=1).gather(1, target[image, None])[:, 0])
    return torch.cat(probabilities).view(low.numel(), batch)


class FaithfulnessResult(TypedDict):
    """What ``faithfulness`` returns (see the module docstring for each score)."""

    average_drop_pct: float
    increase_in_confidence_pct: float
    drop_rate: float
    average_increase: float
    deletion_auc: float
    insertion_auc: float
    salient_drop: float
    nonsalient_change: float
    deletion_curve: list[float]
    insertion_curve: list[float]
    fill: list[float] | str
    n_images: int
    degenerate_maps: int


def faithfulness(
    model: nn.Module,
    explainer: Explainer,
    loader: Iterable,
    *,
    keep: float = 0.15,
    deletion_steps: int = 32,
    occlusion_ratio: float = 0.2,
    fill: FillOption | None = None,
    batch_size: int = 512,
    target: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> FaithfulnessResult:
    """Average Drop / Increase in Confidence, deletion / insertion AUC and EDDA's SD / NC.

    The model runs in eval mode (its modes are restored); the class explained and scored is the
    model's prediction on the clean image, or the label. See the module docstring for the
    definitions.

    Args:
        model: classifier returning logits; images in [0, 1].
        explainer: an explainer of ``model``; ``explainer(x, target)`` gives ``[B, 1, h, w]``.
        loader: iterable of ``(x, y)`` or ``(x, y, masks)`` batches (labels are used only with
            ``target="label"``).
        keep: fraction of most salient pixels kept for Average Drop / Increase.
        deletion_steps: number of equal steps from no pixel to all pixels.
        occlusion_ratio: fraction occluded for SD (most salient) and NC (least salient).
        fill: replacement, as the augmentations' fills: ``None`` for the model's normalised
            zero (its ``Normalize`` mean, the dataset mean colour, as the reference code; 0
            without one), a number in [0, 1] or ``"zero"`` (black), per-channel values,
            ``"mean"`` (each image's mean), ``"blur"`` or ``"noise"``.
        batch_size: perturbed images per forward pass.
        target: explain and score the predicted class (None; on the clean image) or the
            ``"label"``, as ``localization``'s ``target``.
        seed: seeds the random tie-breaking of the pixel ranking.
        progress: show a tqdm bar over the loader.

    Returns:
        ``{"average_drop_pct", "increase_in_confidence_pct", "drop_rate", "average_increase",
        "deletion_auc", "insertion_auc", "salient_drop", "nonsalient_change": float,
        "deletion_curve", "insertion_curve": [T + 1 floats, mean p_c per step],
        "fill": the fill used, "n_images": int, "degenerate_maps": the number of maps with
        one value everywhere (all zero, say: a ReLU'd CAM whose raw map is negative
        everywhere), which rank pixels at random; a warning is logged when there are any}``.

    Example:
        >>> from explainaug.explain import Saliency
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> loader = [(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))]
        >>> result = faithfulness(model, Saliency(model), loader, deletion_steps=4)
        >>> len(result["deletion_curve"]), result["n_images"]
        (5, 2)
    """
    check_explainer(explainer, model)
    check_fraction(keep, "keep")
    check_fraction(occlusion_ratio, "occlusion_ratio")
    check_count(deletion_steps, "deletion_steps")
    check_count(batch_size, "batch_size")
    check_loader_target(target)
    zero = model_mean(model) or [0.0]  # the model's normalised zero, in [0, 1] pixels
    if fill is None:
        fill = zero
    replacement = as_fill(fill)
    device = model_device(model)
    pad = torch.tensor(zero, device=device).view(1, -1, 1, 1)
    generator = seeded_generator(seed, device)
    clean, perturbed = [], []
    degenerate = torch.zeros((), dtype=torch.long, device=device)
    with eval_mode(model):
        for x, labels, *_ in tqdm(
            iterate_batches(loader, device), desc="faithfulness", disable=not progress, leave=False
        ):
            with torch.no_grad():
                logits = model(x).float()
            classes = explained_classes(target, logits, labels)
            confidence = logits.softmax(dim=1).gather(1, classes[:, None])[:, 0]
            flat = explain_flat(explainer, x, classes)
            degenerate += (flat.amax(dim=1) == flat.amin(dim=1)).sum()
            rank = descending_rank(flat, generator)
            filled = replacement(x, replacement.draw(x)).expand_as(x)
            canvases = torch.stack([filled, blurred_canvas(x, pad.to(x.dtype))])
            plan = _perturbation_plan(rank.shape[1], keep, deletion_steps, occlusion_ratio, device)
            with torch.no_grad():
                perturbed.append(
                    _perturbed_probabilities(model, x, rank, classes, canvases, plan, batch_size)
                )
            clean.append(confidence)
    y_clean, scores = torch.cat(clean), torch.cat(perturbed, dim=1)
    n_images, n_degenerate = int(y_clean.shape[0]), int(degenerate)
    if n_degenerate:
        logger.warning(degenerate_warning(n_degenerate, n_images))
    kept, salient, nonsalient = scores[0], scores[1], scores[2]
    deletion = scores[3 : deletion_steps + 4].T
    insertion = scores[deletion_steps + 4 :].T
    return {
        "average_drop_pct": float(100 * ((y_clean - kept).clamp_min(0) / y_clean).mean()),
        "increase_in_confidence_pct": float(100 * (kept > y_clean).float().mean()),
        "drop_rate": float((kept < y_clean).float().mean()),
        "average_increase": float(((kept - y_clean).clamp_min(0) / y_clean).mean()),
        "deletion_auc": float(trapezoid_auc(deletion).mean()),
        "insertion_auc": float(trapezoid_auc(insertion).mean()),
        "salient_drop": float(((y_clean - salient).clamp_min(0) / y_clean).mean()),
        "nonsalient_change": float(((y_clean - nonsalient).abs() / y_clean).mean()),
        "deletion_curve": deletion.mean(dim=0).tolist(),
        "insertion_curve": insertion.mean(dim=0).tolist(),
        "fill": fill if isinstance(fill, str) else torch.as_tensor(fill).flatten().tolist(),
        "n_images": n_images,
        "degenerate_maps": n_degenerate,
    }


def degenerate_warning(degenerate: int, images: int, model: str | None = None) -> str:
    """The warning for ``degenerate`` constant maps among ``images``.

    Example:
        >>> degenerate_warning(3, 8, "ce")
        "ce: 3 of 8 explanation maps are constant (all zero, say: a ReLU'd CAM whose raw map is negative everywhere); faithfulness ranks their pixels at random"
    """
    return (
        f"{model + ': ' if model else ''}{degenerate} of {images} explanation maps are "
        "constant (all zero, say: a ReLU'd CAM whose raw map is negative everywhere); "
        "faithfulness ranks their pixels at random"
    )


def run_in_report(job: Job) -> dict:
    """The ``faithfulness`` evaluator of ``evaluate.report``."""
    assert job.explainer is not None
    options = {"seed": job.options.seed, **job.options.faithfulness_options}
    return faithfulness(
        job.model, job.explainer(job.model), job.loader, progress=job.options.progress, **options
    )
