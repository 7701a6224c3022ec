"""The non-explanation-driven control of EDDA: random occlusions of the same area and shape."""

from __future__ import annotations

from torch import Tensor, nn

from explainaug._validation import check_fraction
from explainaug.augment import RandomOcclusion as RandomOcclusionAugment
from explainaug.models.normalize import model_mean
from explainaug.settings import CONTROL_TARGETS
from explainaug.train.methods.base import (
    OCCLUSION_RATIO,
    ExplanationStart,
    OcclusionAlignment,
    occlusion_loss,
)
from explainaug.train.methods.edda import EDDA
from explainaug.typing import BatchAugment, RatioOcclusion


class RandomOcclusionControl(OcclusionAlignment):
    """EDDA's fair control: the same training step with randomly placed occlusions.

    Named apart from the augmentation ``explainaug.augment.RandomOcclusion`` it uses.

    It differs from ``EDDA`` only in where the occlusions go: the same area (``occlusion_ratio``,
    or with ``match`` an ``EDDA``'s per-image areas, measured on the live model's explanations at
    the cost of one explanation per step), the same shape statistics (by default contiguous
    regions: ``SaliencyOcclusion``'s selection on a smooth random map,
    ``augment.RandomOcclusion(shape="regions")``) and the same fill (the dataset mean). Both
    random views are identically distributed, so by default both keep their label
    (``control_targets="label"``: a plain occlusion augmentation); ``control_targets="edda"``
    gives the view named "salient" EDDA's opposing target (``salient_target``), the "EDDA
    targets" ablation (which handicaps the control by construction).

    Args:
        occlusion_ratio: the fraction of pixels each occlusion covers; None: 0.2.
        control_targets: ``"label"`` or ``"edda"`` (see above).
        salient_target: the opposing target of ``control_targets="edda"`` (see ``EDDALoss``).
        explain_warmup_epochs: epochs of plain cross-entropy first (use EDDA's for a fair
            baseline).
        explain_start: when the occlusions start, as EDDA's (``"epoch"`` or ``"plateau"``).
        augment: batched augmentation applied to each batch first, or True for
            ``augment.crop_flip``; None: none.
        occlusion: ``RandomOcclusion``-like augmentation, ``forward(x, ratio=float | Tensor[B])``;
            None builds ``explainaug.augment.RandomOcclusion(shape="regions", fill="mean",
            mean=<model's input mean>)``.
        match: an ``EDDA`` whose per-image occluded areas to copy.
        loss: an ``EDDALoss`` to use instead of the one ``control_targets`` gives.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> method = RandomOcclusionControl(occlusion_ratio=0.25)
        >>> method.setup(model)
        >>> batch = (torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
        >>> loss, metrics = method.training_step(model, batch, epoch=0)
        >>> method.loss.salient_target  # both occluded views keep their label
        'label'
    """

    def __init__(
        self,
        *,
        occlusion_ratio: float | None = None,
        control_targets: str = "label",
        salient_target: str = "uniform",
        explain_warmup_epochs: int = 0,
        explain_start: str = "epoch",
        augment: bool | BatchAugment | None = None,
        occlusion: RatioOcclusion | None = None,
        match: EDDA | None = None,
        loss: nn.Module | None = None,
    ) -> None:
        if control_targets not in CONTROL_TARGETS:
            raise ValueError(
                f"control_targets must be one of {CONTROL_TARGETS}, got {control_targets!r}"
            )
        occlusion_ratio = OCCLUSION_RATIO if occlusion_ratio is None else occlusion_ratio
        check_fraction(occlusion_ratio, "occlusion_ratio", closed=True)
        target = "label" if control_targets == "label" else salient_target
        super().__init__(
            occlusion_loss(target) if loss is None else loss,
            ExplanationStart(
                explain_warmup_epochs, explain_start, "random-occlusion", "loss", "its occlusions"
            ),
            augment,
        )
        self.occlusion_ratio = occlusion_ratio
        self.occlusion = occlusion
        self.match = match
        self._occlusion: RatioOcclusion | None = None

    def setup(self, model: nn.Module) -> None:
        if self.occlusion is None:
            self._occlusion = RandomOcclusionAugment(
                shape="regions", fill="mean", mean=model_mean(model), check_values=False
            )
        else:
            self._occlusion = self.occlusion
        if self.match is not None:
            self.match.setup(model)

    def occlude(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if self._occlusion is None:
            raise RuntimeError("call setup(model) before the first training step")
        nonsalient_ratio: float | Tensor = self.occlusion_ratio
        salient_ratio: float | Tensor = self.occlusion_ratio
        if self.match is not None:
            maps = self.match.explain(x, y)
            nonsalient, salient = self.match.occlusions
            size = tuple(x.shape[-2:])
            nonsalient_ratio = 1 - nonsalient.mask(maps, size).mean(dim=(1, 2, 3))
            salient_ratio = 1 - salient.mask(maps, size).mean(dim=(1, 2, 3))
        return (self._occlusion(x, ratio=nonsalient_ratio), self._occlusion(x, ratio=salient_ratio))

    def __repr__(self) -> str:
        return (
            f"RandomOcclusionControl(occlusion_ratio={self.occlusion_ratio}, "
            f"explain_warmup_epochs={self.explain_warmup_epochs}, loss={self.loss!r})"
        )
