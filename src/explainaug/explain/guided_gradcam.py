"""Guided Grad-CAM (Selvaraju et al., 2017): guided backpropagation times upsampled Grad-CAM."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from explainaug.explain._base import Explainer
from explainaug.explain.cam import Reshape
from explainaug.explain.gradcam import GradCAM, gradcam_map
from explainaug.explain.guided_backprop import GuidedBackprop
from explainaug.explain.layers import LayerSpec


class GuidedGradCAM(Explainer):
    """Guided Grad-CAM, matching Captum's ``GuidedGradCam``.

    ``attribute`` returns ``GBP(x) * up(ReLU(GradCAM(x)))`` ``[B, C, H, W]``, with nearest-
    neighbour upsampling (Captum's default ``interpolate_mode``). ``__call__`` returns its
    absolute value summed over channels. Costs two forward and two backward passes, like Captum;
    the guided pass explains the class the Grad-CAM pass resolved, so ``target=None`` picks the
    predicted class once.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> explainer = GuidedGradCAM(SmallCNN(num_classes=3, width=4).eval())
        >>> explainer(torch.rand(2, 3, 16, 16), target=2).shape
        torch.Size([2, 1, 16, 16])
    """

    def __init__(
        self,
        model: nn.Module,
        layer: LayerSpec | None = None,
        *,
        reshape: Reshape = "auto",
        check_values: bool = True,
    ) -> None:
        super().__init__(model, check_values=check_values)
        self.gradcam = GradCAM(model, layer, reshape=reshape, check_values=check_values)
        self.guided_backprop = GuidedBackprop(model, check_values=False)

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        activations, gradients, target = self.gradcam._layer_gradients(
            x, target, create_graph, checked_target=target if self.check_values else None
        )
        cam = gradcam_map(activations, gradients).relu()
        guided = self.guided_backprop._attribute(x, target, create_graph)
        return guided * F.interpolate(cam, size=tuple(x.shape[-2:]), mode="nearest")

    def __repr__(self) -> str:
        layer = self.gradcam.layer_name
        return f"{type(self).__name__}({type(self.model).__name__}, layer={layer!r})"
