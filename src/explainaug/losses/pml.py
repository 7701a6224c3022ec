"""pytorch-metric-learning losses wherever a contrastive loss goes (SupCon, ExCon).

A PML loss is called as PML calls it, ``loss(embeddings, labels)``. ExCon's background rows
(masked images that lost their class) reach a pair-based PML loss (``GenericPairLoss``:
``SupConLoss``, ``NTXentLoss``, ``ContrastiveLoss``, ``MultiSimilarityLoss``, ...) as negatives
only, through an explicit ``indices_tuple`` of positive and negative pairs; other losses cannot
express "negative only" and get a ``TypeError``.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.losses import BaseMetricLossFunction, GenericPairLoss
from torch import Tensor

Pairs = tuple[Tensor, Tensor, Tensor, Tensor]


def is_pml_loss(loss: object) -> bool:
    """Whether ``loss`` is a pytorch-metric-learning loss.

    Example:
        >>> from pytorch_metric_learning import losses
        >>> is_pml_loss(losses.SupConLoss()), is_pml_loss(torch.nn.MSELoss())
        (True, False)
    """
    return isinstance(loss, BaseMetricLossFunction)


def check_background_loss(loss: object) -> None:
    """Raise ``TypeError`` unless ``loss`` can take background rows as negatives only: an
    ``ExConLoss``-like loss (``loss(rows, labels, background)``) or a pair-based PML loss.

    Example:
        >>> from pytorch_metric_learning import losses
        >>> check_background_loss(losses.NTXentLoss())
    """
    if is_pml_loss(loss) and not isinstance(loss, GenericPairLoss):
        raise TypeError(
            f"{type(loss).__name__} cannot take ExCon's background rows as negatives only "
            "(it ignores explicit pairs); use a pair-based pytorch-metric-learning loss "
            "(SupConLoss, NTXentLoss, ContrastiveLoss, ...) or negative_pair=False"
        )
    if not is_pml_loss(loss) and not hasattr(loss, "background_anchor"):
        raise TypeError(
            f"ExCon's loss must be an ExConLoss or a pair-based pytorch-metric-learning loss, "
            f"got {type(loss).__name__}; with negative_pair=False any SupCon-style loss works"
        )


def background_pairs(labels: Tensor, background: Tensor, background_anchor: bool = False) -> Pairs:
    """PML pairs ``(a1, p, a2, n)`` with ExCon's semantics for rows with ``labels`` ``[N]`` and
    ``background`` flags ``[N]``.

    Positives: two different rows of the same label, neither background (with
    ``background_anchor``, also two background rows). Negatives: every other pair of different
    rows whose first row can be an anchor (not background, unless ``background_anchor``). So a
    background row only enlarges the denominators of the other rows' anchors, as ``ExConLoss``.

    Example:
        >>> a1, p, a2, n = background_pairs(torch.tensor([0, 0, 0]), torch.tensor([False, False, True]))
        >>> list(zip(a1.tolist(), p.tolist())), list(zip(a2.tolist(), n.tolist()))
        ([(0, 1), (1, 0)], [(0, 2), (1, 2)])
    """
    n = labels.shape[0]
    other = ~torch.eye(n, dtype=torch.bool, device=labels.device)
    plain = ~background
    positive = (labels[:, None] == labels[None, :]) & plain[:, None] & plain[None, :]
    anchors = plain
    if background_anchor:
        positive = positive | (background[:, None] & background[None, :])
        anchors = torch.ones_like(plain)
    positive = positive & other
    negative = other & ~positive & anchors[:, None]
    a1, p = positive.nonzero(as_tuple=True)
    a2, neg = negative.nonzero(as_tuple=True)
    return a1, p, a2, neg


def pml_loss(
    loss: BaseMetricLossFunction,
    rows: Tensor,
    labels: Tensor,
    background: Tensor | None = None,
    background_anchor: bool = False,
) -> Tensor:
    """Call a PML loss on feature rows ``[N, D]`` (in float32 at least, also under autocast);
    background rows (bool ``[N]``) as negatives only.

    Example:
        >>> from pytorch_metric_learning import losses
        >>> rows = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
        >>> pml_loss(losses.SupConLoss(), rows, torch.tensor([0, 1, 0, 1])).shape
        torch.Size([])
    """
    rows = rows.to(torch.promote_types(rows.dtype, torch.float32))
    if background is None:
        return loss(rows, labels)
    check_background_loss(loss)
    return loss(rows, labels, indices_tuple=background_pairs(labels, background, background_anchor))
