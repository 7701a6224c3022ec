"""EDDA's occlusion-alignment loss: keep the label without the background, lose it without the object."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._validation import (
    check_fraction,
    check_interval,
    check_labels,
    check_nonnegative,
    check_tensor,
)
from explainaug.settings import SALIENT_TARGETS


class EDDALoss(nn.Module):
    """Cross-entropy on clean images plus alignment terms on the two occluded views.

    ``L = CE(f(x), y) + nonsalient_weight * CE(f(x_non), y) + salient_weight * L_sal``, where
    ``x_non`` has its non-salient pixels occluded (the prediction should not change) and
    ``x_sal`` its salient pixels (confidence should drop). ``L_sal`` by ``salient_target``:

    - ``"uniform"``: cross-entropy to the uniform distribution (maximum entropy).
    - ``"smooth"``: cross-entropy to ``(1 - label_smoothing) * onehot(y) + label_smoothing / K``.
    - ``"background"``: cross-entropy to an extra class; the logits then have ``K + 1`` columns,
      the last one being "background", and labels lie in ``[0, K)``.
    - ``"hinge"``: ``max(0, p_y(x_sal) - p_y(x) + margin)`` with ``p_y(x)`` detached, so only the
      occluded image's confidence is pushed below the clean one.
    - ``"label"``: cross-entropy to the label, like the other view: no opposing target, so the
      loss is plain occlusion augmentation (the label-preserving random control's targets).

    Args:
        label_smoothing: smoothing mass for ``"smooth"``, in (0, 1] (PyTorch's
            ``cross_entropy(label_smoothing=)`` meaning).
        margin: confidence margin for ``"hinge"``, in [0, 1].
        check_values: check on every call that labels lie in ``[0, K)`` (a host sync); the
            training methods' default losses turn it off (no syncs in a training step).

    Shape:
        three logits tensors ``[B, K]`` (``[B, K + 1]`` for ``"background"``) and labels ``[B]``.

    Example:
        >>> loss_fn = EDDALoss(salient_target="uniform")
        >>> logits = torch.zeros(2, 3)
        >>> round(loss_fn(logits, logits, logits, torch.tensor([0, 1])).item(), 4)  # 3 * log(3)
        3.2958
    """

    def __init__(
        self,
        *,
        nonsalient_weight: float = 1.0,
        salient_weight: float = 1.0,
        salient_target: str = "uniform",
        label_smoothing: float = 0.5,
        margin: float = 0.1,
        check_values: bool = True,
    ) -> None:
        super().__init__()
        self.check_values = bool(check_values)
        if salient_target not in SALIENT_TARGETS:
            raise ValueError(
                f"salient_target must be one of {SALIENT_TARGETS}, got {salient_target!r}"
            )
        self.nonsalient_weight = check_nonnegative(nonsalient_weight, "nonsalient_weight")
        self.salient_weight = check_nonnegative(salient_weight, "salient_weight")
        self.salient_target = salient_target
        self.label_smoothing = check_interval(
            label_smoothing, "label_smoothing", 0, 1, include_low=False
        )
        self.margin = check_fraction(margin, "margin", closed=True)

    def components(
        self,
        clean_logits: Tensor,
        nonsalient_logits: Tensor,
        salient_logits: Tensor,
        labels: Tensor,
    ) -> dict[str, Tensor]:
        """The three unweighted terms: ``{"clean", "nonsalient", "salient"}``.

        Example:
            >>> logits = torch.zeros(1, 2)
            >>> sorted(EDDALoss().components(logits, logits, logits, torch.tensor([0])))
            ['clean', 'nonsalient', 'salient']
        """
        self._check(clean_logits, nonsalient_logits, salient_logits, labels)
        return {
            "clean": F.cross_entropy(clean_logits, labels),
            "nonsalient": F.cross_entropy(nonsalient_logits, labels),
            "salient": self._salient_term(clean_logits, salient_logits, labels),
        }

    def forward(
        self,
        clean_logits: Tensor,
        nonsalient_logits: Tensor,
        salient_logits: Tensor,
        labels: Tensor,
    ) -> Tensor:
        terms = self.components(clean_logits, nonsalient_logits, salient_logits, labels)
        return (
            terms["clean"]
            + self.nonsalient_weight * terms["nonsalient"]
            + self.salient_weight * terms["salient"]
        )

    def _salient_term(self, clean_logits: Tensor, salient_logits: Tensor, labels: Tensor) -> Tensor:
        log_probs = F.log_softmax(salient_logits.float(), dim=1)
        classes = salient_logits.shape[1]
        if self.salient_target == "uniform":
            return -log_probs.mean(dim=1).mean()
        if self.salient_target == "smooth":
            target = torch.full_like(log_probs, self.label_smoothing / classes)
            target.scatter_add_(
                1, labels[:, None], torch.full_like(log_probs[:, :1], 1 - self.label_smoothing)
            )
            return -(target * log_probs).sum(dim=1).mean()
        if self.salient_target == "background":
            return F.nll_loss(log_probs, torch.full_like(labels, classes - 1))
        if self.salient_target == "label":
            return F.nll_loss(log_probs, labels)
        clean_confidence = F.softmax(clean_logits.detach().float(), dim=1).gather(
            1, labels[:, None]
        )
        occluded_confidence = log_probs.exp().gather(1, labels[:, None])
        return F.relu(occluded_confidence - clean_confidence + self.margin).mean()

    def _check(self, clean: Tensor, nonsalient: Tensor, salient: Tensor, labels: Tensor) -> None:
        for name, logits in (
            ("clean_logits", clean),
            ("nonsalient_logits", nonsalient),
            ("salient_logits", salient),
        ):
            check_tensor(logits, name)
            if logits.ndim != 2 or logits.shape != clean.shape:
                raise ValueError(
                    f"{name} must have the shape of clean_logits {tuple(clean.shape)} "
                    f"([B, classes]), got {tuple(logits.shape)}"
                )
        check_tensor(labels, "labels")
        if labels.dtype != torch.long:
            raise TypeError(f"labels must be a LongTensor, got dtype {labels.dtype}")
        if labels.shape != (clean.shape[0],):
            raise ValueError(
                f"labels must have shape [{clean.shape[0]}], got {tuple(labels.shape)}"
            )
        if self.salient_target == "background" and clean.shape[1] < 2:
            raise ValueError("salient_target='background' needs logits with K + 1 >= 2 columns")
        if self.check_values:  # one host sync
            background = self.salient_target == "background"
            try:
                check_labels(labels, clean.shape[0], clean.shape[1] - background)
            except ValueError as error:
                note = (
                    f" (salient_target='background': the last of the {clean.shape[1]} logit "
                    "columns is the background class, not a label)"
                )
                raise ValueError(f"{error}{note if background else ''}") from None

    def extra_repr(self) -> str:
        return (
            f"salient_target={self.salient_target!r}, nonsalient_weight={self.nonsalient_weight}, "
            f"salient_weight={self.salient_weight}"
        )
