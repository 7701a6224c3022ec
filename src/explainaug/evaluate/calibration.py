"""Calibration on clean and corrupted data: ECE, NLL, Brier score, reliability diagrams.

Conventions follow Hendrycks & Dietterich (2019) and Ovadia et al. (2019):

- ECE: ``n_bins`` equal-width bins on the top-1 confidence, binned as torchmetrics bins
  (``linspace(0, 1, n_bins + 1)`` with ``bucketize(right=True)``, so a confidence of exactly 1.0
  gets a bin of its own), weighted by bin size (L1).
- NLL: cross-entropy on the (temperature-scaled) logits.
- Brier: mean over samples of ``sum_k (p_k - y_k)^2`` (Ovadia et al.'s code reports this minus 1).

Corruptions are applied on the model's device by ``explainaug.data.corruptions.corrupt`` with a
seeded generator, so a sweep is reproducible. For the released CIFAR-C ``.npy`` files, evaluate a
loader of each file with ``corruptions=None`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._validation import check_count, check_labels, check_positive, check_tensor
from explainaug.data.corruptions import CORRUPTIONS, corrupt
from explainaug.evaluate._predict import model_device, predict

if TYPE_CHECKING:
    from explainaug.evaluate.report import Job

Corruptions = str | Sequence[str] | None
Temperature = float | str | None


def _check_probs(probs: object, labels: object) -> tuple[Tensor, Tensor]:
    """Check probabilities ``[N, K]`` (rows in [0, 1] summing to 1) and labels ``[N]``."""
    probs = check_tensor(probs, "probs")
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(
            f"probs must have shape [N, classes] with N >= 1, got {tuple(probs.shape)}"
        )
    if not probs.is_floating_point():
        raise TypeError(f"probs must be a floating-point tensor, got dtype {probs.dtype}")
    labels = check_labels(labels, probs.shape[0], num_classes=probs.shape[1])
    if labels.device != probs.device:
        raise ValueError(f"labels are on {labels.device} but probs are on {probs.device}")
    if not bool(torch.isfinite(probs).all()):
        raise ValueError("probs contains NaN or infinite values")
    low, high = float(probs.min()), float(probs.max())
    if low < 0 or high > 1:
        raise ValueError(f"probs must lie in [0, 1] (pass softmax(logits)), got [{low}, {high}]")
    worst = float((probs.sum(dim=1) - 1).abs().max())
    if worst > 1e-3:
        raise ValueError(f"each row of probs must sum to 1, got a row off by {worst:.3g}")
    return probs, labels


def _bin_totals(probs: Tensor, labels: Tensor, n_bins: int) -> tuple[Tensor, Tensor, Tensor]:
    """Sums of confidence and correctness, and counts, over ``n_bins + 1`` torchmetrics bins.

    The extra last bin holds confidences of exactly 1.0.
    """
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).to(confidence.dtype)
    edges = torch.linspace(0, 1, n_bins + 1, device=probs.device, dtype=confidence.dtype)
    index = torch.bucketize(confidence, edges, right=True) - 1
    zeros = torch.zeros(n_bins + 1, device=probs.device, dtype=confidence.dtype)
    return (
        zeros.scatter_add(0, index, confidence),
        zeros.scatter_add(0, index, correct),
        zeros.scatter_add(0, index, torch.ones_like(confidence)),
    )


def expected_calibration_error(probs: Tensor, labels: Tensor, n_bins: int = 15) -> Tensor:
    """Expected calibration error (L1, equal-width bins) of top-1 confidences.

    Equals torchmetrics' ``MulticlassCalibrationError(n_bins=n_bins, norm="l1")``. ``probs``:
    softmax probabilities ``[N, classes]``; returns a 0-dim tensor on their device.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4]])
        >>> round(float(expected_calibration_error(probs, torch.tensor([0, 1]))), 4)
        0.35
    """
    probs, labels = _check_probs(probs, labels)
    confidence_sum, correct_sum, _ = _bin_totals(probs, labels, check_count(n_bins, "n_bins"))
    return (confidence_sum - correct_sum).abs().sum() / probs.shape[0]


def brier_score(probs: Tensor, labels: Tensor) -> Tensor:
    """Multiclass Brier score: mean over samples of ``sum_k (p_k - onehot_k)^2``, in [0, 2].

    Example:
        >>> float(brier_score(torch.tensor([[0.75, 0.25]]), torch.tensor([1])))
        1.125
    """
    probs, labels = _check_probs(probs, labels)
    onehot = F.one_hot(labels.long(), probs.shape[1]).to(probs.dtype)
    return (probs - onehot).square().sum(dim=1).mean()


def reliability_diagram(probs: Tensor, labels: Tensor, n_bins: int = 15) -> dict[str, Tensor]:
    """Per-bin mean confidence, accuracy and count of top-1 predictions.

    Bins are ECE's bins, except that a confidence of exactly 1.0 joins the last bin here, so the
    diagram has exactly ``n_bins`` bins whose counts sum to N. Empty bins hold confidence and
    accuracy 0 (check ``count``).

    Returns:
        ``{"edges": [n_bins + 1], "confidence": [n_bins], "accuracy": [n_bins],
        "count": [n_bins]}``, tensors on the device of ``probs``.

    Example:
        >>> probs = torch.tensor([[0.9, 0.1], [0.6, 0.4], [1.0, 0.0]])
        >>> reliability_diagram(probs, torch.tensor([0, 1, 0]), n_bins=2)["count"].tolist()
        [0.0, 3.0]
    """
    probs, labels = _check_probs(probs, labels)
    n_bins = check_count(n_bins, "n_bins")
    confidence_sum, correct_sum, count = (
        torch.cat([total[: n_bins - 1], total[n_bins - 1 :].sum(0, keepdim=True)])
        for total in _bin_totals(probs, labels, n_bins)
    )
    occupied = count.clamp_min(1)
    return {
        "edges": torch.linspace(0, 1, n_bins + 1, device=probs.device, dtype=probs.dtype),
        "confidence": confidence_sum / occupied,
        "accuracy": correct_sum / occupied,
        "count": count,
    }


def fit_temperature(model: nn.Module, val_loader: Iterable, max_iter: int = 100) -> float:
    """Fit the temperature ``T`` that minimises the NLL of ``logits / T`` on clean validation data.

    L-BFGS over ``log T`` on the model's device, starting at ``T = 1``; ``T`` is bounded to
    [0.01, 100]. ``val_loader``: iid validation batches of images in [0, 1], not the test set.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 3))
        >>> loader = [(torch.rand(8, 3, 1, 1), torch.randint(0, 3, (8,)))]
        >>> 0.01 <= fit_temperature(model, loader) <= 100
        True
    """
    logits, labels = predict(model, val_loader)
    log_t = torch.zeros((), device=logits.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    log_bounds = (math.log(0.01), math.log(100.0))

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.clamp(*log_bounds).exp(), labels)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    temperature = math.exp(float(log_t.detach()))
    if math.isnan(temperature):
        raise ValueError("temperature fitting diverged (NaN); check the validation logits")
    return min(max(temperature, 0.01), 100.0)


def _resolve_temperature(
    model: nn.Module, temperature: Temperature, val_loader: Iterable | None
) -> float:
    if temperature == "fit":
        if val_loader is None:
            raise ValueError('temperature="fit" needs val_loader= (clean iid validation data)')
        return fit_temperature(model, val_loader)
    if val_loader is not None:
        raise ValueError(
            f'val_loader is only used with temperature="fit"; got temperature={temperature!r}'
        )
    if temperature is None:
        return 1.0
    if isinstance(temperature, str):
        raise ValueError(f'temperature must be None, a number > 0 or "fit", got {temperature!r}')
    return float(check_positive(temperature, "temperature"))


def _corruption_names(corruptions: Corruptions) -> list[str]:
    if corruptions is None:
        return []
    if corruptions == "all":
        return list(CORRUPTIONS)
    names = [corruptions] if isinstance(corruptions, str) else list(corruptions)
    unknown = [name for name in names if name not in CORRUPTIONS]
    if unknown or not names:
        raise ValueError(
            f'corruptions must be None, "all" or names from {CORRUPTIONS}; got {corruptions!r}'
        )
    return names


def _check_severities(severities: Sequence[int]) -> list[int]:
    values = [severities] if isinstance(severities, int) else list(severities)
    if not values or not all(
        isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 5 for s in values
    ):
        raise ValueError(f"severities must be integers in 1..5, got {severities!r}")
    return values


class CalibrationMetrics(TypedDict):
    """Calibration of one set of predictions; ``reliability`` holds the diagram's lists."""

    accuracy: float
    ece: float
    nll: float
    brier: float
    count: int
    reliability: dict[str, list[float]]


class _CalibrationRequired(TypedDict):
    temperature: float
    clean: CalibrationMetrics


class CalibrationResult(_CalibrationRequired, total=False):
    """What ``calibration`` returns; ``corruptions`` and ``mean`` only with corruptions."""

    corruptions: dict[str, dict[int, CalibrationMetrics]]
    mean: dict[str, float]


def _metrics(logits: Tensor, labels: Tensor, temperature: float, n_bins: int) -> CalibrationMetrics:
    """Accuracy, ECE, NLL, Brier and the reliability diagram of temperature-scaled logits."""
    scaled = logits / temperature
    probs = scaled.softmax(dim=1)
    diagram = reliability_diagram(probs, labels, n_bins)
    return {
        "accuracy": float((logits.argmax(dim=1) == labels).float().mean()),
        "ece": float(expected_calibration_error(probs, labels, n_bins)),
        "nll": float(F.cross_entropy(scaled, labels)),
        "brier": float(brier_score(probs, labels)),
        "count": labels.shape[0],
        "reliability": {key: value.tolist() for key, value in diagram.items()},
    }


def calibration(
    model: nn.Module,
    loader: Iterable,
    *,
    corruptions: Corruptions = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    n_bins: int = 15,
    temperature: Temperature = None,
    val_loader: Iterable | None = None,
    seed: int = 0,
    clean: tuple[Tensor, Tensor] | None = None,
) -> CalibrationResult:
    """Calibration metrics on clean data and, optionally, on every corruption x severity cell.

    Images in [0, 1] are corrupted batch by batch on the model's device, with a generator
    seeded with ``seed`` at the start of each cell.

    Args:
        model: classifier returning logits ``[B, classes]``.
        loader: test batches; re-iterable (a DataLoader or a list) when corruptions are given.
        corruptions: ``None`` (clean only), ``"all"`` (the 15 CIFAR-C corruptions) or names.
        severities: corruption severities, integers in 1..5.
        n_bins: equal-width confidence bins for ECE and the reliability diagram.
        temperature: ``None`` (T = 1), a number > 0, or ``"fit"`` to fit T on ``val_loader``
            (temperature scaling, Guo et al. 2017). Logits are divided by T before every metric.
        val_loader: clean iid validation batches, used only with ``temperature="fit"``.
        clean: the model's ``(logits, labels)`` on ``loader`` when already computed
            (``evaluate._predict.predict``), so the clean pass is not run again.

    Returns:
        ``temperature``, ``clean`` metrics and, with corruptions, ``corruptions`` (``{name:
        {severity: metrics}}``) and ``mean`` (accuracy, ece, nll and brier over all cells).

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 3))
        >>> loader = [(torch.rand(8, 3, 1, 1), torch.randint(0, 3, (8,)))]
        >>> sorted(calibration(model, loader)["clean"])
        ['accuracy', 'brier', 'count', 'ece', 'nll', 'reliability']
    """
    n_bins = check_count(n_bins, "n_bins")
    names = _corruption_names(corruptions)
    severities = _check_severities(severities) if names else []
    if names and isinstance(loader, Iterator):  # iter() would start a DataLoader
        raise TypeError(
            "loader must be re-iterable (a DataLoader or a list, not an iterator): "
            "every corruption cell runs over it again"
        )
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    scale = _resolve_temperature(model, temperature, val_loader)
    result: CalibrationResult = {
        "temperature": scale,
        "clean": _metrics(*(clean or predict(model, loader)), scale, n_bins),
    }
    if not names:
        return result
    device = model_device(model)
    cells: dict[str, dict[int, CalibrationMetrics]] = {}
    for name in names:
        cells[name] = {}
        for severity in severities:
            generator = torch.Generator(device=device).manual_seed(seed)
            transform = partial(corrupt, name=name, severity=severity, generator=generator)
            cells[name][severity] = _metrics(*predict(model, loader, transform), scale, n_bins)
    flat = [cell for by_severity in cells.values() for cell in by_severity.values()]
    result["corruptions"] = cells
    result["mean"] = {
        key: sum(cell[key] for cell in flat) / len(flat)
        for key in ("accuracy", "ece", "nll", "brier")
    }
    return result


def run_in_report(job: Job) -> CalibrationResult:
    """The ``calibration`` evaluator of ``evaluate.report``: clean metrics from the shared
    clean predictions, then the corruption cells."""
    options = job.options
    return calibration(
        job.model,
        job.loader,
        corruptions=options.corruptions,
        severities=options.severities,
        seed=options.seed,
        clean=job.clean_predictions(),
    )
