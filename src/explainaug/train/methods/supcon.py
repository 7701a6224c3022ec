"""Supervised contrastive learning with SupContrast's/ExCon's alternating linear head."""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import BaseMetricLossFunction
from torch import Tensor, nn

from explainaug._shared import eval_mode, is_contrastive, unpack_batch
from explainaug._validation import check_interval
from explainaug.augment import resized_crop_flip, supcon_views
from explainaug.distributed import world_size
from explainaug.losses import SupConLoss
from explainaug.losses.supcon import BASE_TEMPERATURE
from explainaug.settings import LINEAR_HEADS
from explainaug.train.methods.base import (
    LazyAugment,
    Method,
    accuracy,
    plateau,
    require_contrastive,
)
from explainaug.typing import BatchAugment, Metrics, ViewTransform

logger = logging.getLogger("explainaug")


def refuse_default_loss_options(
    loss: nn.Module, temperature: float | None, base_temperature: float | None
) -> None:
    """Raise ``ValueError`` for options of the default loss given beside ``loss`` (they would be
    ignored): a ``temperature``, or a ``base_temperature`` other than the default.

    Example:
        >>> refuse_default_loss_options(nn.Identity(), None, BASE_TEMPERATURE)  # nothing to refuse
    """
    for name, value, default in (
        ("temperature", temperature, None),
        ("base_temperature", base_temperature, BASE_TEMPERATURE),
    ):
        if value != default:
            raise ValueError(
                f"{name}={value} configures the default loss only; the given loss "
                f"{type(loss).__name__} has its own {name.replace('_', ' ')}: set it there"
            )


def default_temperature(temperature: float | None) -> float:
    """``temperature``, or SupContrast's 0.1 when it is None.

    Example:
        >>> default_temperature(None), default_temperature(0.5)
        (0.1, 0.5)
    """
    return 0.1 if temperature is None else temperature


class SupCon(Method):
    """SupCon (Khosla et al. 2020) on two random views, plus a linear head on detached features.

    Each step draws ``views(x)`` (``[B, V, C, H, W]``), runs the encoder once over all views
    and minimises ``SupConLoss(project(h))``. The linear head (``ContrastiveModel.classifier``)
    is trained one of two ways (``linear_head``):

    - ``"alternating"`` (default; the official SupContrast/ExCon loop): after every contrastive
      epoch, the Trainer runs one cross-entropy epoch of the head (``head_step``) on detached
      features of the training images, encoder in eval mode, images through ``head_augment``
      (the official classifier loader: random resized crop and flip on CIFAR, none on Tiny
      ImageNet). Contrastive steps leave the head alone, so ExCon's probe is the head of the
      previous epoch, as in the official code.
    - ``"online"``: every contrastive step adds ``CE(classify(h), y)`` on the detached features
      of all its views (solo-learn's online probe).

    Args:
        temperature: temperature of the default loss (None: 0.1 as in SupCon/ExCon); with
            ``loss=`` set it on that loss (giving both raises).
        base_temperature: the loss is scaled by ``temperature / base_temperature``; 0.07 as
            SupContrast and the official ExCon code (x1.43 at temperature 0.1). Pass
            ``base_temperature=temperature`` (or None) for scale 1 (pytorch-metric-learning's
            convention).
        gather_distributed: under ``torchrun``, contrast each anchor against the rows of every
            process (the global batch, as the official single-process code); False contrasts
            within each process's batch. None: True for the default loss, else the given
            loss's own setting. Outside a process group it changes nothing.
        view_min_scale: smallest crop area of the default views (SupContrast: 0.2).
        linear_head: ``"alternating"`` or ``"online"`` (see above).
        head_augment: batched augmentation of the head epoch's images in [0, 1], or True for
            ``augment.resized_crop_flip`` (the official classifier loader on CIFAR-100); None:
            none.
        views: module mapping images ``[B, C, H, W]`` in [0, 1] to views ``[B, V, C, H, W]``;
            ``None`` builds ``explainaug.augment.supcon_views(image size, n_views=2,
            scale=(view_min_scale, 1))`` (SupContrast's crop/flip/jitter/grayscale) at the first
            step.
        loss: a ``SupConLoss`` to use instead of ``SupConLoss(temperature, base_temperature,
            check_values=False)`` (a ``temperature`` or non-default ``base_temperature`` then raises),
            or a pytorch-metric-learning loss (called as ``loss(embeddings, labels)``).

    Example:
        >>> from explainaug.models import ContrastiveModel, SmallCNN
        >>> model = ContrastiveModel(SmallCNN(None, width=4), 16, proj_dim=8, num_classes=2)
        >>> two_views = lambda x: torch.stack([x, x.flip(3)], dim=1)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))
        >>> loss, metrics = SupCon(views=two_views).training_step(model, batch, epoch=0)
        >>> sorted(metrics)
        ['contrastive_loss', 'plateau']
        >>> sorted(SupCon(views=two_views).head_step(model, batch, epoch=0)[1])
        ['head_accuracy', 'head_loss']
    """

    def __init__(
        self,
        *,
        temperature: float | None = None,
        base_temperature: float | None = BASE_TEMPERATURE,
        gather_distributed: bool | None = None,
        view_min_scale: float = 0.2,
        linear_head: str = "alternating",
        head_augment: bool | BatchAugment | None = None,
        views: ViewTransform | None = None,
        loss: SupConLoss | BaseMetricLossFunction | None = None,
    ) -> None:
        check_interval(view_min_scale, "view_min_scale", 0, 1, include_low=False)
        if linear_head not in LINEAR_HEADS:
            raise ValueError(f"linear_head must be one of {LINEAR_HEADS}, got {linear_head!r}")
        if loss is None:
            gather = gather_distributed is not False
            loss = SupConLoss(
                default_temperature(temperature),
                base_temperature,
                gather_distributed=gather,
                check_values=False,
            )
        else:
            refuse_default_loss_options(loss, temperature, base_temperature)
            given = getattr(loss, "gather_distributed", False)
            if gather_distributed is not None and gather_distributed != given:
                raise ValueError(
                    f"gather_distributed={gather_distributed} contradicts the given loss's "
                    f"gather_distributed={given}; set it on the loss only"
                )
        self.loss = loss
        self.views = views
        self.view_min_scale = view_min_scale
        self.linear_head = linear_head
        self.head_augment = LazyAugment(head_augment, resized_crop_flip)

    @property
    def alternating_head(self) -> bool:  # type: ignore[override]
        """True with ``linear_head="alternating"``: the Trainer then runs ``head_step`` epochs."""
        return self.linear_head == "alternating"

    def prepare(self, model: nn.Module) -> nn.Module:
        """``model`` if it is contrastive (``features``/``project``/``classify``); a plain
        classifier is wrapped by ``ContrastiveModel.from_classifier`` (its head becomes the
        linear probe, a projection head is added)."""
        if is_contrastive(model):
            return model
        from explainaug.models import ContrastiveModel

        try:
            wrapped = ContrastiveModel.from_classifier(model)
        except ValueError:
            require_contrastive(model, type(self).__name__)  # raises, naming what is missing
            raise
        logger.info(
            "%s: %s wrapped in a ContrastiveModel (its head is the linear probe; projection "
            "head %d -> 128 added)",
            type(self).__name__,
            type(model).__name__,
            wrapped.classifier.in_features,
        )
        return wrapped

    def setup(self, model: nn.Module) -> None:
        require_contrastive(model, type(self).__name__)

    def random_views(self, x: Tensor) -> Tensor:
        """Views ``[B, V, C, H, W]`` of images ``x`` in [0, 1]."""
        if self.views is None:
            self.views = supcon_views(
                tuple(x.shape[-2:]), n_views=2, scale=(self.view_min_scale, 1.0), check_values=False
            )
        views = self.views(x)
        if views.ndim != 5 or views.shape[0] != x.shape[0] or views.shape[2:] != x.shape[1:]:
            raise ValueError(
                f"views must map [B, C, H, W] to [B, V, C, H, W]; got {tuple(views.shape)} "
                f"for images {tuple(x.shape)}"
            )
        return views

    def training_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        x, y, *_ = unpack_batch(batch)
        views = self.random_views(x)
        return self.contrastive_step(model, views.transpose(0, 1).flatten(0, 1), y, views.shape[1])

    def contrastive_step(
        self,
        model: nn.Module,
        images: Tensor,
        labels: Tensor,
        n_views: int,
        background_labels: Tensor | None = None,
    ) -> tuple[Tensor, Metrics]:
        """One encoder pass over ``images``: the contrastive loss (plus the online probe's).

        Args:
            images: ``[V*B (+ K), C, H, W]``: the views, view-major (all images of view 0,
                then view 1, ...), then ``K`` optional background images.
            labels: ``[B]``, the labels of the images of each view.
            n_views: ``V``.
            background_labels: ``[K]`` source labels of ``K`` background images that follow
                the views; ``self.loss`` is then called as ``loss(rows, row_labels, flags)``
                (an ``ExConLoss``) and each background row enters it twice, as ExCon appends
                a background image to both views.
        """
        features = model.features(images)
        rows = model.project(features)
        real = labels.shape[0] * n_views
        row_labels = labels.repeat(n_views)
        flags = None
        if background_labels is not None:
            rows = torch.cat([rows, rows[real:]])
            row_labels = torch.cat([row_labels, background_labels, background_labels])
            flags = torch.arange(rows.shape[0], device=rows.device) >= real
        contrastive = self.contrastive_loss(rows, row_labels, flags)
        metrics = {"contrastive_loss": contrastive.detach()}
        level = self.plateau(rows.shape[0])
        if level is not None:
            metrics["plateau"] = contrastive.new_full((), level)
        if self.alternating_head:
            return contrastive, metrics
        probe_logits = model.classify(features[:real])
        probe = F.cross_entropy(probe_logits, labels.repeat(n_views))
        metrics["probe_loss"] = probe.detach()
        metrics["probe_accuracy"] = accuracy(probe_logits, labels.repeat(n_views))
        return contrastive + probe, metrics

    def plateau(self, rows: int) -> float | None:
        """The loss over ``rows`` feature rows of an encoder that tells no image apart (every
        similarity equal): ``scale * ln(N - 1)`` for the package's losses, over the rows of
        every process when they gather (about: ExCon's background counts vary); None for
        another loss.

        Example:
            >>> round(SupCon().plateau(128), 3)  # batch 64, two views, scale 0.1 / 0.07
            6.92
        """
        scale = (
            getattr(self.loss, "temperature", None),
            getattr(self.loss, "base_temperature", None),
        )
        if None in scale or not isinstance(self.loss, SupConLoss):
            return None
        processes = world_size() if self.loss.gather_distributed else 1
        return plateau(rows * processes - 1, scale[0] / scale[1])

    def head_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        """Cross-entropy of the linear head on detached features of ``head_augment(x)``, with
        the encoder in eval mode (SupContrast's ``train_classifier``); the mode is restored."""
        x, y, *_ = unpack_batch(batch)
        x = self.head_augment(x)
        with torch.no_grad(), eval_mode(model):
            features = model.features(x)
        logits = model.classify(features)
        loss = F.cross_entropy(logits, y)
        return loss, {"head_loss": loss.detach(), "head_accuracy": accuracy(logits, y)}

    def contrastive_loss(self, rows: Tensor, labels: Tensor, background: Tensor | None) -> Tensor:
        """The contrastive loss of feature rows ``[N, D]`` (``background`` flags are ExCon's)."""
        if background is not None:
            raise ValueError("SupCon has no background rows; use ExCon for background negatives")
        return self.loss(rows, labels)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(loss={self.loss!r})"
