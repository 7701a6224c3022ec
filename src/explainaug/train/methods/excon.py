"""ExCon: SupCon with saliency-masked positive views and background negatives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from pytorch_metric_learning.losses import BaseMetricLossFunction
from torch import Tensor, nn

from explainaug._shared import preserved_model_state, unpack_batch
from explainaug.augment import SaliencyMask
from explainaug.losses import ExConLoss
from explainaug.losses.pml import check_background_loss, is_pml_loss, pml_loss
from explainaug.losses.supcon import BASE_TEMPERATURE
from explainaug.models.normalize import model_mean
from explainaug.train.methods.base import (
    ExplanationStart,
    build_live_explainer,
    check_explainer,
    explain_float32,
)
from explainaug.train.methods.supcon import (
    SupCon,
    default_temperature,
    refuse_default_loss_options,
)
from explainaug.typing import BatchAugment, ExplainerLike, MaskTransform, Metrics, ViewTransform


class ExCon(SupCon):
    """Explanation-driven supervised contrastive learning (Zhang et al. 2022), official semantics.

    After ``explain_warmup_epochs`` of plain SupCon, each step explains the un-augmented images
    with the live model (target = true label; Grad-CAM without ReLU on the model's default CAM
    layer by default, as the official code), keeps their salient pixels (``mask``; default: normalised
    saliency > 0.5 kept, the rest filled with the dataset mean colour) and asks the linear head
    (the probe; with the default alternating head, the one trained after the previous epoch)
    whether the masked image still shows its class. Where it does, the masked image replaces
    the second random view; where it does not, the random view stays and, with
    ``negative_pair``, the masked image joins the batch as a background sample: never an
    anchor nor a positive, only a negative in every denominator (``ExConLoss``; it counts twice,
    as the official code appends it to both views).

    Unlike the official code: no CPU/numpy round trip or per-image loop; the explanation and
    probe-check passes build no graph and leave BatchNorm running statistics unchanged; one
    encoder pass covers views and background images. Background images are selected with a
    boolean index (one host sync per step, as their number varies); under ``torchrun`` the
    loss gathers every process's rows, background ones included, whatever their counts.

    Args:
        explainer: a registry name (built by ``explain.run_explainer`` at ``setup``: Grad-CAM
            without ReLU on a contrastive model) or an explainer of the model being trained.
        cam_layer: the CAM layer of a named explainer (a dotted name; a plain backbone's own
            names work, e.g. ``"layer4"`` of a torchvision ResNet); None: the model's default.
        explain_warmup_epochs: epochs of plain SupCon before masking starts. The official loop
            counts epochs from 1 and masks when ``epoch >= exp_epochs``, so its
            ``--exp_epochs 50`` (CIFAR-100) is 49 warm-up epochs here, the default;
            ``--exp_epochs 0`` or 1 is 0.
        explain_start: ``"epoch"`` (at ``explain_warmup_epochs``, the official loop) or
            ``"plateau"`` (from then on, once an epoch's contrastive loss has left its plateau:
            masking an untrained encoder's images turns most of them into background
            negatives; see ``ExplanationStart``).
        temperature, base_temperature, gather_distributed, view_min_scale, linear_head,
            head_augment, views: as ``SupCon`` (``linear_head="alternating"``, the official
            loop: the head trained in its own epoch after each contrastive epoch is the probe).
        negative_pair: add masked images that lost their class as background negatives.
        background_anchor: background images form one class of their own (see ``ExConLoss``).
        mask: the masking augmentation (``SaliencyMask``-like, ``mask(x, maps)``); None builds
            ``SaliencyMask(threshold=0.5, fill="mean", mean=<the model's input mean>)``.
        loss: an ``ExConLoss`` to use instead of the default, or a pytorch-metric-learning
            loss: pair-based ones (``SupConLoss``, ``NTXentLoss``, ...) receive the background
            rows as negatives only (explicit pairs, ``explainaug.losses.pml``); with
            ``negative_pair=False`` any PML loss works. ``background_anchor`` applies to both.

    A plain classifier works as the model: ``Trainer`` wraps it with
    ``ContrastiveModel.from_classifier`` (its head becomes the linear probe).

    Example:
        >>> from explainaug.models import ContrastiveModel, SmallCNN
        >>> model = ContrastiveModel(SmallCNN(None, width=4), 16, proj_dim=8, num_classes=2)
        >>> views = lambda x: torch.stack([x, x.flip(3)], dim=1)
        >>> method = ExCon(explain_warmup_epochs=0, views=views)
        >>> method.setup(model)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))
        >>> loss, metrics = method.training_step(model, batch, epoch=0)
        >>> sorted(metrics)  # masked_kept: the fraction of masked images the probe keeps
        ['contrastive_loss', 'masked_kept', 'plateau']
    """

    def __init__(
        self,
        *,
        explainer: str | ExplainerLike = "gradcam",
        cam_layer: str | None = None,
        explain_warmup_epochs: int = 49,
        explain_start: str = "epoch",
        temperature: float | None = None,
        base_temperature: float | None = BASE_TEMPERATURE,
        gather_distributed: bool | None = None,
        view_min_scale: float = 0.2,
        linear_head: str = "alternating",
        head_augment: bool | BatchAugment | None = None,
        negative_pair: bool = True,
        background_anchor: bool = False,
        mask: nn.Module | None = None,
        views: ViewTransform | None = None,
        loss: ExConLoss | BaseMetricLossFunction | None = None,
    ) -> None:
        if loss is None:
            loss = ExConLoss(
                default_temperature(temperature),
                base_temperature,
                background_anchor=background_anchor,
                gather_distributed=gather_distributed is not False,
                check_values=False,
            )
        else:
            refuse_default_loss_options(loss, temperature, base_temperature)
        if negative_pair:
            check_background_loss(loss)
        super().__init__(
            gather_distributed=gather_distributed,
            view_min_scale=view_min_scale,
            linear_head=linear_head,
            head_augment=head_augment,
            views=views,
            loss=loss,
        )
        check_explainer(explainer, cam_layer, "ExCon")
        self.explainer = explainer
        self.cam_layer = cam_layer
        self.background_anchor = background_anchor
        self.mask = mask
        self.start = ExplanationStart(
            explain_warmup_epochs, explain_start, "ExCon", "contrastive_loss"
        )
        self.negative_pair = negative_pair
        self.live_explainer: ExplainerLike | None = None
        self._mask: MaskTransform | None = None

    def setup(self, model: nn.Module) -> None:
        super().setup(model)
        self.live_explainer = build_live_explainer(self.explainer, model, "ExCon", self.cam_layer)
        if self.mask is None:
            self._mask = SaliencyMask(
                threshold=0.5, fill="mean", mean=model_mean(model), check_values=False
            )
        else:
            self._mask = self.mask

    def masked_views(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Salient-content images of ``x`` and whether the probe still predicts ``y`` on them.

        Returns:
            ``(masked [B, C, H, W], kept bool [B])``.
        """
        if self.live_explainer is None:
            raise RuntimeError("call setup(model) before the first training step")
        masked = self._mask(x, explain_float32(self.live_explainer, x, y))
        with torch.no_grad(), preserved_model_state(model):
            kept = model.classify(model.features(masked)).argmax(dim=1) == y
        return masked, kept

    def training_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        x, y, *_ = unpack_batch(batch)
        views = self.random_views(x)
        if views.shape[1] < 2:
            raise ValueError(f"ExCon needs at least 2 views per image, got {views.shape[1]}")
        if not self.start.active(epoch):
            return self.contrastive_step(
                model, views.transpose(0, 1).flatten(0, 1), y, views.shape[1]
            )
        masked, kept = self.masked_views(model, x, y)
        views = views.clone()
        views[:, 1] = torch.where(kept.view(-1, 1, 1, 1), masked, views[:, 1])
        images = views.transpose(0, 1).flatten(0, 1)
        background_labels = None
        if self.negative_pair:
            lost = ~kept
            images = torch.cat([images, masked[lost]])
            background_labels = y[lost]
        loss, metrics = self.contrastive_step(model, images, y, views.shape[1], background_labels)
        metrics["masked_kept"] = kept.float().mean()
        return loss, metrics

    @property
    def explain_warmup_epochs(self) -> int:
        """Epochs of plain SupCon before masking can start."""
        return self.start.warmup_epochs

    def start_epoch(self, epoch: int, history: Sequence[dict[str, Any]]) -> None:
        self.start.update(epoch, history)

    def contrastive_loss(self, rows: Tensor, labels: Tensor, background: Tensor | None) -> Tensor:
        if is_pml_loss(self.loss):
            return pml_loss(self.loss, rows, labels, background, self.background_anchor)
        if background is None:
            background = torch.zeros_like(labels, dtype=torch.bool)
        return self.loss(rows, labels, background)

    def __repr__(self) -> str:
        return (
            f"ExCon(explain_warmup_epochs={self.explain_warmup_epochs}, "
            f"negative_pair={self.negative_pair}, "
            f"loss={self.loss!r})"
        )
