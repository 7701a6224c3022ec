"""ExCon's supervised contrastive loss with background negatives."""

from __future__ import annotations

import torch
from torch import Tensor

from explainaug._validation import check_tensor
from explainaug.losses.supcon import (
    BASE_TEMPERATURE,
    SupConLoss,
    check_finite_features,
    flatten_views,
    supervised_contrastive,
)


class ExConLoss(SupConLoss):
    """SupCon where "background" samples (masked images that lost their class) are negatives only.

    With ``background_anchor=False`` (the official ExCon setting, ``--background_anchor=0``),
    background rows are never anchors and never positives: they only enlarge every anchor's
    softmax denominator, including anchors of their own source class. With
    ``background_anchor=True`` all background rows share one extra class: they are anchors and
    positives of each other, and negatives of everything else.

    Args:
        background_anchor: treat background rows as one class of their own.
        **options: ``gather_distributed``, ``check_values`` of :class:`SupConLoss` (as are
            ``temperature`` and ``base_temperature``).

    Shape:
        features ``[B, V, D]``, labels ``[B]``, background bool ``[B, V]``; or ``[N, D]``,
        ``[N]``, ``[N]``.

    Example:
        >>> loss_fn = ExConLoss(temperature=0.5)
        >>> features = torch.randn(3, 2, 4)
        >>> background = torch.tensor([[False, False], [False, True], [False, False]])
        >>> loss_fn(features, torch.tensor([0, 0, 1]), background).shape
        torch.Size([])
    """

    def __init__(
        self,
        temperature: float = 0.1,
        base_temperature: float | None = BASE_TEMPERATURE,
        *,
        background_anchor: bool = False,
        **options: bool,
    ) -> None:
        super().__init__(temperature, base_temperature, **options)
        self.background_anchor = background_anchor

    def forward(self, features: Tensor, labels: Tensor, background: Tensor) -> Tensor:  # type: ignore[override]
        rows, row_labels = flatten_views(features, labels)
        check_tensor(background, "background")
        if background.dtype != torch.bool:
            raise TypeError(f"background must be a bool tensor, got dtype {background.dtype}")
        if background.shape != features.shape[:-1]:
            raise ValueError(
                f"background must have shape {tuple(features.shape[:-1])} (one flag per feature "
                f"row), got {tuple(background.shape)}"
            )
        if self.check_values:
            check_finite_features(rows)
        is_background = (
            background if background.ndim == 1 else background.transpose(0, 1).reshape(-1)
        )
        row_labels = row_labels.masked_fill(is_background, 0)  # one shared background class
        anchors = None if self.background_anchor else ~is_background
        return supervised_contrastive(
            rows,
            row_labels,
            anchors,
            self.temperature,
            self.temperature / self.base_temperature,
            self.gather_distributed,
            background=is_background,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, background_anchor={self.background_anchor}"
