"""ExCon: SupCon with saliency-masked positive views and background negatives."""

from __future__ import annotations

import torch
from pytorch_metric_learning.losses import BaseMetricLossFunction
from torch import Tensor, nn

from explainaug._shared import preserved_model_state
from explainaug._validation import check_count
from explainaug.augment import SaliencyMask
from explainaug.losses import ExConLoss
from explainaug.losses.pml import check_background_loss, is_pml_loss, pml_loss
from explainaug.train.methods.base import (
    explain_float32,
    live_explainer,
    model_mean,
    split_batch,
)
from explainaug.train.methods.supcon import (
    BASE_TEMPERATURE,
    SupCon,
    default_temperature,
    refuse_default_loss_options,
)
from explainaug.typing import (
    Batch,
    BatchAugment,
    ExplainerLike,
    MaskTransform,
    Metrics,
    ViewTransform,
)


class ExCon(SupCon):
    """Explanation-driven supervised contrastive learning (Zhang et al. 2022), official semantics.

    After ``warmup_epochs`` of plain SupCon, each step explains the un-augmented images with the
    live model (target = true label; Grad-CAM without ReLU on the model's default CAM layer by
    default, as the official code), keeps their salient pixels (``mask``; default: normalised
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
        explainer: an explainer of the model being trained; None builds
            ``GradCAM(model, relu=False, check_values=False)`` at ``setup``.
        mask: the masking augmentation (``SaliencyMask``-like, ``mask(x, maps)``); None builds
            ``SaliencyMask(threshold=0.5, fill="mean", mean=<the model's input mean>)``.
        warmup_epochs: epochs of plain SupCon before masking starts. The official loop counts
            epochs from 1 and masks when ``epoch >= exp_epochs``, so its ``--exp_epochs 50``
            (CIFAR-100) is 49 warm-up epochs here, the default; ``--exp_epochs 0`` or 1 is 0.
        negative_pair: add masked images that lost their class as background negatives.
        background_anchor: background images form one class of their own (see ``ExConLoss``).
        temperature: temperature of the default loss (None: 0.1); with ``loss=`` set it on
            that loss (giving both raises).
        base_temperature: loss scale ``temperature / base_temperature``, as ``SupCon`` (0.07,
            the official value).
        views: random views, as in ``SupCon`` (at least 2 per image).
        loss: an ``ExConLoss`` to use instead of the default, or a pytorch-metric-learning
            loss: pair-based ones (``SupConLoss``, ``NTXentLoss``, ...) receive the background
            rows as negatives only (explicit pairs, ``explainaug.losses.pml``); with
            ``negative_pair=False`` any PML loss works. ``background_anchor`` applies to both.
        gather_distributed: contrast across all processes under ``torchrun`` (see ``SupCon``).
        linear_head: ``"alternating"`` (official: the head trained in its own epoch after each
            contrastive epoch is the probe) or ``"online"``; see ``SupCon``.
        head_augment: augmentation of the head epoch's images, as ``SupCon``.
        cam_layer: the layer of the default Grad-CAM (a dotted name; a plain backbone's own
            names work, e.g. ``"layer4"`` of a torchvision ResNet); None uses the model's
            default CAM layer.

    A plain classifier works as the model: ``Trainer`` wraps it with
    ``ContrastiveModel.from_classifier`` (its head becomes the linear probe).

    Example:
        >>> from explainaug.models import ContrastiveModel, SmallCNN
        >>> model = ContrastiveModel(SmallCNN(None, width=4), 16, proj_dim=8, num_classes=2)
        >>> method = ExCon(warmup_epochs=0, views=lambda x: torch.stack([x, x.flip(3)], dim=1))
        >>> method.setup(model)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))
        >>> loss, metrics = method.training_step(model, batch, epoch=0)
        >>> sorted(metrics)  # masked_kept: the fraction of masked images the probe keeps
        ['contrastive_loss', 'masked_kept']
    """

    def __init__(
        self,
        explainer: ExplainerLike | None = None,
        mask: nn.Module | None = None,
        warmup_epochs: int = 49,
        negative_pair: bool = True,
        background_anchor: bool = False,
        temperature: float | None = None,
        views: ViewTransform | None = None,
        loss: ExConLoss | BaseMetricLossFunction | None = None,
        base_temperature: float | None = BASE_TEMPERATURE,
        gather_distributed: bool | None = None,
        linear_head: str = "alternating",
        head_augment: BatchAugment | None = None,
        *,
        cam_layer: str | None = None,
    ) -> None:
        if explainer is not None and cam_layer is not None:
            raise ValueError("ExCon: give explainer= or cam_layer=, not both")
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
        check_count(warmup_epochs, "warmup_epochs", minimum=0)
        super().__init__(
            None,
            views,
            loss,
            gather_distributed=gather_distributed,
            linear_head=linear_head,
            head_augment=head_augment,
        )
        self.explainer = explainer
        self.cam_layer = cam_layer
        self.background_anchor = background_anchor
        self.mask = mask
        self.warmup_epochs = warmup_epochs
        self.negative_pair = negative_pair
        self._explainer: ExplainerLike | None = None
        self._mask: MaskTransform | None = None

    def setup(self, model: nn.Module) -> None:
        super().setup(model)
        self._explainer = live_explainer(
            self.explainer, model, "ExCon", relu=False, layer=self.cam_layer
        )
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
        if self._explainer is None:
            raise RuntimeError("call setup(model) before the first training step")
        masked = self._mask(x, explain_float32(self._explainer, x, y))
        with torch.no_grad(), preserved_model_state(model):
            kept = model.classify(model.features(masked)).argmax(dim=1) == y
        return masked, kept

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, Metrics]:
        x, y = split_batch(batch)
        views = self.random_views(x)
        if views.shape[1] < 2:
            raise ValueError(f"ExCon needs at least 2 views per image, got {views.shape[1]}")
        if epoch < self.warmup_epochs:
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

    def contrastive_loss(self, rows: Tensor, labels: Tensor, background: Tensor | None) -> Tensor:
        if is_pml_loss(self.loss):
            return pml_loss(self.loss, rows, labels, background, self.background_anchor)
        if background is None:
            background = torch.zeros_like(labels, dtype=torch.bool)
        return self.loss(rows, labels, background)

    def __repr__(self) -> str:
        return (
            f"ExCon(warmup_epochs={self.warmup_epochs}, negative_pair={self.negative_pair}, "
            f"loss={self.loss!r})"
        )
