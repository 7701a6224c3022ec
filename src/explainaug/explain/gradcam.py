"""Grad-CAM (Selvaraju et al., 2017), batched and differentiable.

The class score's gradient with respect to a convolutional layer's output ``A`` is averaged
over space to give one weight per channel; the map is the weighted channel sum
``sum_k mean_hw(dS/dA_k) * A_k``. One forward pass and one ``autograd.grad`` with respect to the
hooked activation, so the backward pass stops at the layer and never reaches the input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainaug._shared import upsample
from explainaug.explain._base import (
    Explainer,
    LayerSpec,
    captured_outputs,
    check_target_range,
    class_scores,
    default_layer,
    resolve_layer,
)


class GradCAM(Explainer):
    """Grad-CAM at one layer of the model.

    ``attribute`` returns Captum ``LayerGradCam``'s raw output (``relu_attributions=False``):
    ``[B, 1, h, w]`` at the layer's resolution, signed. ``__call__`` turns it into a
    non-negative map at the input resolution (bilinear upsampling).

    Args:
        model: classifier taking images in [0, 1] (it normalises inside) and returning logits.
        layer: module or dotted name whose output ``[B, C, h, w]`` is explained; ``None`` uses
            ``model.default_cam_layer``. If the module runs more than once per forward pass,
            its last output is used.
        relu: ``True`` (Grad-CAM) clamps negative evidence to zero before upsampling. ``False``
            keeps it and shifts each upsampled map by its minimum instead, which orders pixels
            as min-max normalising a non-ReLU'd Captum map does (the official ExCon pipeline).
        check_values: check inputs for NaN/inf and targets for range on every call.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> cam = GradCAM(SmallCNN(num_classes=3, width=4).eval())
        >>> x = torch.rand(2, 3, 32, 32)
        >>> cam.attribute(x, target=1).shape, cam(x, target=1).shape
        (torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 32, 32]))
    """

    def __init__(
        self,
        model: nn.Module,
        layer: LayerSpec | None = None,
        relu: bool = True,
        *,
        check_values: bool = True,
    ) -> None:
        super().__init__(model, check_values=check_values)
        self.layer_name, self.layer = resolve_layer(model, default_layer(model, layer))
        self.relu = relu

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        activations, gradients, _ = self._layer_gradients(
            x, target, create_graph, checked_target=target if self.check_values else None
        )
        return gradcam_map(activations, gradients)

    def _layer_gradients(
        self,
        inputs: Tensor,
        target: Tensor | None,
        create_graph: bool,
        checked_target: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Forward ``inputs``; return the layer's output, the target score's gradient with
        respect to it, and the targets used (``None`` resolved to the predicted class).

        ``checked_target`` (if given) is range-checked against the model's outputs.
        """
        if not inputs.requires_grad:
            # A layer that sees no parameter (e.g. the input normaliser) still needs a graph.
            inputs = inputs.detach().requires_grad_()
        logits, activations = self._forward(inputs)
        check_target_range(checked_target, logits.shape[1])
        scores, target = class_scores(logits, target)
        (gradients,) = torch.autograd.grad(scores.sum(), activations, create_graph=create_graph)
        return activations, gradients, target

    def _forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Forward ``inputs``; return the logits and the layer's output, checked to be 4-D."""
        with captured_outputs([self.layer]) as outputs:
            logits = self.model(inputs)
        activations = outputs[0]
        if not isinstance(activations, Tensor):
            raise ValueError(
                f"layer {self.layer_name!r} gave no tensor output in the forward pass "
                f"(got {type(activations).__name__}); was it called?"
            )
        if activations.ndim != 4:
            raise ValueError(
                f"layer {self.layer_name!r} must output [B, C, h, w] feature maps, "
                f"got shape {tuple(activations.shape)}"
            )
        return logits, activations

    def _to_maps(self, raw: Tensor, x: Tensor) -> Tensor:
        if self.relu:
            return upsample(raw.relu(), tuple(x.shape[-2:]))
        maps = upsample(raw, tuple(x.shape[-2:]))
        return maps - maps.amin(dim=(2, 3), keepdim=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, layer={self.layer_name!r})"


def gradcam_map(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM's channel-weighted sum, ``[N, K, h, w]`` -> ``[N, 1, h, w]``.

    ``sum_k mean_hw(gradients_k) * activations_k``.

    Example:
        >>> gradcam_map(torch.ones(1, 2, 2, 2), torch.full((1, 2, 2, 2), 0.5)).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return (weights * activations).sum(dim=1, keepdim=True)
