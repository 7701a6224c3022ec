"""Top-k and per-class accuracy of a classifier over a loader."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from explainaug.evaluate._predict import predict

if TYPE_CHECKING:
    from explainaug.evaluate.report import Job


def topk_correct(logits: Tensor, labels: Tensor, topk: Sequence[int]) -> dict[int, Tensor]:
    """Per-sample hits: for each ``k``, a bool ``[N]`` that says whether the label is in the top k.

    Only ``k <= classes`` are returned. Ties are broken as ``torch.topk`` breaks them.

    Example:
        >>> hits = topk_correct(torch.tensor([[0.1, 0.7, 0.2]]), torch.tensor([2]), (1, 2))
        >>> {k: v.tolist() for k, v in hits.items()}
        {1: [False], 2: [True]}
    """
    ks = sorted({k for k in topk if k <= logits.shape[1]})
    if not ks:
        return {}
    ranked = logits.topk(ks[-1], dim=1).indices
    hit_at_rank = (ranked == labels[:, None]).cumsum(dim=1).bool()
    return {k: hit_at_rank[:, k - 1] for k in ks}


def accuracy(
    model: nn.Module,
    loader: Iterable,
    *,
    topk: Sequence[int] = (1, 5),
    per_class: bool = True,
    extra_logits: int = 0,
) -> dict:
    """Top-k accuracy and per-class top-1 accuracy of ``model`` over ``loader``.

    Args:
        topk: the k values to report; those larger than the number of classes are skipped.
        extra_logits: trailing outputs that are not classes (a model trained with EDDA's
            background class, see ``train.Method.extra_logits``): never counted as predictions.

    Returns:
        ``{"top1", "top5", ..., "count"}`` plus, when ``per_class``, ``"per_class"`` (one
        accuracy per class, ``None`` for a class with no samples) and ``"class_counts"``.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 3))
        >>> loader = [(torch.rand(4, 3, 1, 1), torch.tensor([0, 1, 2, 0]))]
        >>> sorted(accuracy(model, loader, topk=(1,)))
        ['class_counts', 'count', 'per_class', 'top1']
    """
    _check_topk(topk)
    logits, labels = predict(model, loader)
    real = logits[:, : logits.shape[1] - extra_logits]
    return accuracy_of(real, labels, topk=topk, per_class=per_class)


def accuracy_of(
    logits: Tensor, labels: Tensor, *, topk: Sequence[int] = (1, 5), per_class: bool = True
) -> dict:
    """:func:`accuracy` of predictions already made: ``logits [N, classes]``, ``labels [N]``.

    Example:
        >>> accuracy_of(torch.tensor([[2.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0]), topk=(1,))["top1"]
        0.5
    """
    _check_topk(topk)
    count = labels.shape[0]
    hits_at_k = topk_correct(logits, labels, topk)
    result: dict = {f"top{k}": float(hits.float().mean()) for k, hits in hits_at_k.items()}
    result["count"] = count
    if per_class:
        num_classes = logits.shape[1]
        hits = (logits.argmax(dim=1) == labels).float()
        class_counts = torch.bincount(labels, minlength=num_classes)
        class_hits = torch.bincount(labels, weights=hits, minlength=num_classes)
        rates = (class_hits / class_counts.clamp_min(1)).tolist()
        result["per_class"] = [
            rate if n > 0 else None for rate, n in zip(rates, class_counts.tolist(), strict=False)
        ]
        result["class_counts"] = class_counts.tolist()
    return result


def _check_topk(topk: object) -> None:
    valid_k = (
        [isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in topk]
        if isinstance(topk, Sequence)
        else []
    )
    if not valid_k or not all(valid_k):
        raise ValueError(f"topk must be a non-empty sequence of integers >= 1, got {topk!r}")


def run_in_report(job: Job) -> dict:
    """The ``accuracy`` evaluator of ``evaluate.report``: from the shared clean predictions."""
    return accuracy_of(*job.clean_predictions())
