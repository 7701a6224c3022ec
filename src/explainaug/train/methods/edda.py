"""EDDA: train on explanation-driven occlusions of each batch."""

from __future__ import annotations

from torch import Tensor, nn

from explainaug.augment import SaliencyOcclusion
from explainaug.train.methods.base import (
    OcclusionAlignment,
    explain_float32,
    live_explainer,
    model_mean,
)
from explainaug.typing import BatchAugment, ExplainerLike, MaskTransform


class EDDA(OcclusionAlignment):
    """Explanation-driven data augmentation (Li et al. 2021, reconstructed; see reference/edda.md).

    Each step after the warm-up explains the clean images with the live model (target = true
    label), occludes their salient region (confidence should drop) and their non-salient region
    (the prediction should stay), and trains on clean and occluded images in one forward pass.
    The explanation pass builds no graph and leaves BatchNorm running statistics unchanged.

    Args:
        explainer: an explainer of the model being trained; None builds
            ``GradCAM(model, check_values=False)`` at ``setup``. Any explainer works.
        salient: occlusion of the salient region; None builds
            ``SaliencyOcclusion("salient", ratio=0.2, fill="mean", mean=<model's input mean>)``.
        nonsalient: occlusion of the non-salient region; None: as ``salient``, "nonsalient".
        loss: an ``EDDALoss``; None builds ``EDDALoss(check_values=False)`` (uniform target on
            salient occlusion).
        warmup_epochs: epochs of plain cross-entropy before occlusions start (the ExCon
            precedent is a quarter of the run).
        augment: optional batched augmentation applied to each batch first (crop, flip).
        cam_layer: the layer of the default Grad-CAM (a dotted name, e.g. ``"layer4"`` of a
            torchvision ResNet); None uses the model's default CAM layer.

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
        explainer: ExplainerLike | None = None,
        salient: MaskTransform | None = None,
        nonsalient: MaskTransform | None = None,
        loss: nn.Module | None = None,
        warmup_epochs: int = 0,
        augment: BatchAugment | None = None,
        *,
        cam_layer: str | None = None,
    ) -> None:
        super().__init__(loss, warmup_epochs, augment)
        if explainer is not None and cam_layer is not None:
            raise ValueError("EDDA: give explainer= or cam_layer=, not both")
        self.explainer = explainer
        self.cam_layer = cam_layer
        self.salient = salient
        self.nonsalient = nonsalient
        self._explainer: ExplainerLike | None = None
        self._occlusions: tuple[MaskTransform, MaskTransform] | None = None

    def setup(self, model: nn.Module) -> None:
        self._explainer = live_explainer(self.explainer, model, "EDDA", layer=self.cam_layer)
        mean = model_mean(model)
        self._occlusions = (
            self.nonsalient
            or SaliencyOcclusion(
                "nonsalient", ratio=0.2, fill="mean", mean=mean, check_values=False
            ),
            self.salient
            or SaliencyOcclusion("salient", ratio=0.2, fill="mean", mean=mean, check_values=False),
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
        if self._explainer is None:
            raise RuntimeError("call setup(model) before the first training step")
        return explain_float32(self._explainer, x, y)

    def occlude(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        maps = self.explain(x, y)
        nonsalient, salient = self.occlusions
        return nonsalient(x, maps), salient(x, maps)

    def __repr__(self) -> str:
        return f"EDDA(warmup_epochs={self.warmup_epochs}, loss={self.loss!r})"
