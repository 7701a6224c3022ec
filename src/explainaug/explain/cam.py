"""The machinery every class activation map (CAM) method shares.

A CAM method explains one layer of the model: a forward pass records the layer's output
``A [B, K, h, w]`` (and, for gradient methods, one ``autograd.grad`` of the target scores with
respect to it, so the backward pass stops at the layer); the methods differ only in how they
weigh and sum the channels. :class:`CAM` holds the layer, the capture and the conversion of the
layer-resolution map to a non-negative map at input resolution (ReLU, bilinear upsampling).
"""

from __future__ import annotations

from abc import abstractmethod

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


class CAM(Explainer):
    """Base class of the CAM methods: one layer, one capture, ReLU + upsampling to the input.

    Subclasses implement ``_attribute`` with ``_forward`` (logits and the layer's output) or
    ``_layer_gradients`` (also the target scores' gradient with respect to it).

    Args:
        model: classifier returning logits ``[B, classes]``.
        layer: module or dotted name whose output ``[B, K, h, w]`` is explained; ``None`` uses
            ``model.default_cam_layer``. If the module runs more than once per forward pass,
            its last output is used.
        check_values: check inputs for NaN/inf and targets for range on every call.
    """

    def __init__(
        self, model: nn.Module, layer: LayerSpec | None = None, *, check_values: bool = True
    ) -> None:
        super().__init__(model, check_values=check_values)
        self.layer_name, self.layer = resolve_layer(model, default_layer(model, layer))

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

    def _to_maps(self, raw: Tensor, x: Tensor) -> Tensor:
        return upsample(raw.relu(), tuple(x.shape[-2:]))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__}, layer={self.layer_name!r})"


class GradientCAM(CAM):
    """A CAM whose map is a function of the layer's output and the target score's gradient.

    Subclasses implement ``combine(activations, gradients) -> [N, 1, h, w]``; ``attribute``
    returns it (signed, at the layer's resolution) and ``__call__`` its ReLU upsampled to the
    input. One forward and one backward pass that stops at the layer.
    """

    @staticmethod
    @abstractmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        """The method's map ``[N, 1, h, w]`` from ``A`` and ``dS/dA`` (both ``[N, K, h, w]``)."""

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        activations, gradients, _ = self._layer_gradients(
            x, target, create_graph, checked_target=target if self.check_values else None
        )
        return self.combine(activations, gradients)
