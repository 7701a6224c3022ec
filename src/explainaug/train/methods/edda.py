"""EDDA: train on explanation-driven occlusions of each batch."""

from __future__ import annotations

from torch import Tensor, nn

from explainaug._validation import check_fraction
from explainaug.augment import SaliencyOcclusion
from explainaug.models.normalize import model_mean
from explainaug.train.methods.base import (
    OCCLUSION_RATIO,
    ExplanationStart,
    OcclusionAlignment,
    build_live_explainer,
    check_explainer,
    explain_float32,
    occlusion_loss,
)
from explainaug.typing import BatchAugment, ExplainerLike, MaskTransform


class EDDA(OcclusionAlignment):
    """Explanation-driven data augmentation (Li et al. 2021, reconstructed; see reference/edda.md).

    Each step after the warm-up explains the clean images with the live model (target = true
    label), occludes their salient region (confidence should drop) and their non-salient region
    (the prediction should stay), and trains on clean and occluded images in one forward pass.
    The explanation pass builds no graph and leaves BatchNorm running statistics unchanged.

    Args:
        explainer: a registry name (built by ``explain.run_explainer`` at ``setup``: Grad-CAM
            with ReLU on the model's CAM layer) or an explainer of the model being trained.
        cam_layer: the CAM layer of a named explainer (a dotted name, e.g. ``"layer4"`` of a
            torchvision ResNet); None: the model's default.
        occlusion_ratio: the fraction of pixels each occlusion covers; None: 0.2.
        salient_target: the target of salient occlusions (see ``EDDALoss``; ``"uniform"``).
        explain_warmup_epochs: epochs of plain cross-entropy before occlusions start (the ExCon
            precedent is a quarter of the run).
        explain_start: ``"epoch"`` (at ``explain_warmup_epochs``) or ``"plateau"`` (from then
            on, once an epoch's loss has left its plateau; see ``ExplanationStart``).
        augment: batched augmentation applied to each batch first, or True for
            ``augment.crop_flip``; None: none.
        salient: occlusion of the salient region; None builds ``SaliencyOcclusion("salient",
            ratio=occlusion_ratio, fill="mean", mean=<model's input mean>)``.
        nonsalient: occlusion of the non-salient region; None: as ``salient``, "nonsalient".
        loss: an ``EDDALoss`` to use instead of ``EDDALoss(salient_target)``.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> method = EDDA()
        >>> method.setup(model)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
        >>> loss, metrics = method.training_step(model, batch, epoch=0)
        >>> sorted(metrics)
        ['accuracy', 'nonsalient_accuracy', 'salient_accuracy']
    """

    def __init__(
        self,
        *,
        explainer: str | ExplainerLike = "gradcam",
        cam_layer: str | None = None,
        occlusion_ratio: float | None = None,
        salient_target: str = "uniform",
        explain_warmup_epochs: int = 0,
        explain_start: str = "epoch",
        augment: bool | BatchAugment | None = None,
        salient: MaskTransform | None = None,
        nonsalient: MaskTransform | None = None,
        loss: nn.Module | None = None,
    ) -> None:
        occlusion_ratio = OCCLUSION_RATIO if occlusion_ratio is None else occlusion_ratio
        check_fraction(occlusion_ratio, "occlusion_ratio")
        if loss is not None and salient_target != "uniform":
            raise ValueError("EDDA: give salient_target= or loss=, not both")
        super().__init__(
            occlusion_loss(salient_target) if loss is None else loss,
            ExplanationStart(explain_warmup_epochs, explain_start, "EDDA", "loss"),
            augment,
        )
        check_explainer(explainer, cam_layer, "EDDA")
        self.explainer = explainer
        self.cam_layer = cam_layer
        self.occlusion_ratio = occlusion_ratio
        self.salient = salient
        self.nonsalient = nonsalient
        self.live_explainer: ExplainerLike | None = None
        self._occlusions: tuple[MaskTransform, MaskTransform] | None = None

    def setup(self, model: nn.Module) -> None:
        self.live_explainer = build_live_explainer(self.explainer, model, "EDDA", self.cam_layer)
        mean = model_mean(model)
        self._occlusions = tuple(  # type: ignore[assignment]
            given
            or SaliencyOcclusion(
                region, ratio=self.occlusion_ratio, fill="mean", mean=mean, check_values=False
            )
            for region, given in (("nonsalient", self.nonsalient), ("salient", self.salient))
        )

    @property
    def occlusions(self) -> tuple[MaskTransform, MaskTransform]:
        """The ``(nonsalient, salient)`` occlusions in use (built by ``setup``)."""
        if self._occlusions is None:
            raise RuntimeError("call setup(model) before the first training step")
        return self._occlusions

    def explain(self, x: Tensor, y: Tensor) -> Tensor:
        """Saliency maps ``[B, 1, H, W]`` of the live model for the true labels (float32,
        outside autocast)."""
        if self.live_explainer is None:
            raise RuntimeError("call setup(model) before the first training step")
        return explain_float32(self.live_explainer, x, y)

    def occlude(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        maps = self.explain(x, y)
        nonsalient, salient = self.occlusions
        return nonsalient(x, maps), salient(x, maps)

    def __repr__(self) -> str:
        return (
            f"EDDA(explain_warmup_epochs={self.explain_warmup_epochs}, "
            f"occlusion_ratio={self.occlusion_ratio}, loss={self.loss!r})"
        )
