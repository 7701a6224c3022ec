"""Supervised contrastive loss (Khosla et al. 2020), stable in low precision and across GPUs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._validation import check_positive, check_tensor
from explainaug.distributed import (
    gather_no_grad,
    gather_sizes,
    gather_with_grad,
    global_sum,
    is_distributed,
    rank,
    world_size,
)


def flatten_views(
    features: Tensor, labels: Tensor, name: str = "features"
) -> tuple[Tensor, Tensor]:
    """Turn ``[B, V, D]`` features with labels ``[B]`` into rows ``[V*B, D]`` with labels ``[V*B]``.

    Rows are ordered view-major (all images of view 0, then view 1, ...), as
    ``torch.cat(features.unbind(1))``. ``[N, D]`` features with labels ``[N]`` pass through.

    Example:
        >>> rows, row_labels = flatten_views(torch.zeros(2, 3, 4), torch.tensor([0, 1]))
        >>> rows.shape, row_labels.tolist()
        (torch.Size([6, 4]), [0, 1, 0, 1, 0, 1])
    """
    check_tensor(features, name)
    check_tensor(labels, "labels")
    if not features.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {features.dtype}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor (torch.long), got dtype {labels.dtype}")
    if features.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape [B, V, D] or [N, D], got {tuple(features.shape)}")
    if labels.shape != (features.shape[0],):
        raise ValueError(
            f"labels must have shape [{features.shape[0]}] for {name} of shape "
            f"{tuple(features.shape)}, got {tuple(labels.shape)}"
        )
    if features.ndim == 2:
        return features, labels
    batch, views = features.shape[:2]
    return features.transpose(0, 1).reshape(batch * views, -1), labels.repeat(views)


def supervised_contrastive(
    rows: Tensor,
    labels: Tensor,
    anchors: Tensor | None,
    temperature: float,
    scale: float = 1.0,
    gather_distributed: bool = False,
    background: Tensor | None = None,
) -> Tensor:
    """SupCon "L_out" on rows ``[N, D]``: mean over anchors of the mean log-probability of positives.

    For anchor i with positives P(i) (same label, not i itself) and all other rows A(i):
    ``l_i = -1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p/T) / sum_{a in A(i)} exp(z_i.z_a/T))``.
    Rows are L2-normalised in float32 (or float64), and the denominator is a log-sum-exp, so fp16/bf16 inputs
    and T=0.01 stay finite. Anchors without a positive are left out of the mean; when no anchor
    has one the loss is 0 (with a graph, so ``backward`` still works). A batch of a single
    class has positives but no negatives: the loss follows SupContrast's formula (finite,
    pulls all rows together), where pytorch-metric-learning returns 0.

    Args:
        rows: features ``[N, D]`` (any scale; normalised here).
        labels: integer labels ``[N]``.
        anchors: bool ``[N]``, rows that act as anchors (None = all). Non-anchors still appear
            as positives and negatives of the anchors.
        temperature: softmax temperature T.
        scale: factor on the loss (SupContrast's ``T / base_temperature``).
        gather_distributed: contrast against the rows of every process (their counts may
            differ); each process's anchors are its own rows, the loss is normalised by the
            global anchor count (times the world size, since DDP averages gradients), so the
            mean over processes is the one-process loss on all rows, and gradients reach the
            local rows. Outside a process group it changes nothing.
        background: bool ``[N]``; two rows are positives only if both or neither are background
            (background rows form a class of their own, whatever their labels).

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
        >>> loss = supervised_contrastive(z, torch.tensor([0, 0, 1]), None, temperature=1.0)
        >>> round(loss.item(), 4)  # only rows 0 and 1 have a positive: -log(e / (e + 1))
        0.3133
    """
    z = F.normalize(rows.to(torch.promote_types(rows.dtype, torch.float32)), dim=1)
    gather = gather_distributed and is_distributed()
    z_all, labels_all, background_all, offset = z, labels, background, 0
    if gather:
        sizes = gather_sizes(z)
        z_all, labels_all = gather_with_grad(z, sizes), gather_no_grad(labels, sizes)
        if background is not None:
            background_all = gather_no_grad(background, sizes)
        offset = sum(sizes[: rank()])

    logits = z @ z_all.T / temperature
    columns = torch.arange(z_all.shape[0], device=z.device)
    is_self = columns[None, :] == (torch.arange(z.shape[0], device=z.device) + offset)[:, None]
    logits = logits.masked_fill(is_self, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)

    positive = (labels[:, None] == labels_all[None, :]) & ~is_self
    if background is not None:
        positive &= background[:, None] == background_all[None, :]
    positive_count = positive.sum(dim=1)
    mean_log_prob = log_prob.masked_fill(~positive, 0.0).sum(dim=1) / positive_count.clamp_min(1)
    valid = positive_count > 0
    if anchors is not None:
        valid = valid & anchors
    total = -torch.where(valid, mean_log_prob, torch.zeros_like(mean_log_prob)).sum()
    count = valid.sum()
    if gather:
        return scale * total * world_size() / global_sum(count).clamp_min(1)
    return scale * total / count.clamp_min(1)


def check_finite_features(features: Tensor, name: str = "features") -> None:
    """Raise ``ValueError`` when features hold NaN or infinite values (one host sync).

    Example:
        >>> check_finite_features(torch.zeros(2, 2))
    """
    if not bool(torch.isfinite(features).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


BASE_TEMPERATURE = 0.07
"""SupContrast's and the official ExCon code's loss scale ``temperature / 0.07``."""


class SupConLoss(nn.Module):
    """Supervised contrastive loss over several views per image.

    Equals SupContrast's loss with ``contrast_mode="all"`` and, with ``base_temperature=None``
    (no rescaling), pytorch-metric-learning's ``SupConLoss`` on ``torch.cat(views)``.

    Args:
        temperature: softmax temperature (0.1 in SupCon/ExCon).
        base_temperature: SupContrast's rescaling, loss *= temperature / base_temperature; 0.07
            as the official SupContrast/ExCon code; None means no rescaling
            (pytorch-metric-learning's convention).
        gather_distributed: under ``torchrun``, contrast against the features of every process
            (the global batch, as one process would; see ``supervised_contrastive``); outside a
            process group it changes nothing.
        check_values: check features for NaN/inf on each call (one host-device sync).

    Shape:
        features ``[B, V, D]`` with labels ``[B]``, or ``[N, D]`` with labels ``[N]``.

    Example:
        >>> loss_fn = SupConLoss(temperature=0.1)
        >>> features = torch.nn.functional.normalize(torch.randn(4, 2, 8), dim=2)
        >>> loss_fn(features, torch.tensor([0, 1, 0, 1])).shape
        torch.Size([])
    """

    def __init__(
        self,
        temperature: float = 0.1,
        base_temperature: float | None = BASE_TEMPERATURE,
        *,
        gather_distributed: bool = True,
        check_values: bool = True,
    ) -> None:
        super().__init__()
        self.temperature = check_positive(temperature, "temperature")
        self.base_temperature = check_positive(
            temperature if base_temperature is None else base_temperature, "base_temperature"
        )
        self.gather_distributed = gather_distributed
        self.check_values = check_values

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        rows, row_labels = flatten_views(features, labels)
        if self.check_values:
            check_finite_features(rows)
        return supervised_contrastive(
            rows,
            row_labels,
            None,
            self.temperature,
            self.temperature / self.base_temperature,
            self.gather_distributed,
        )

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, base_temperature={self.base_temperature}"
