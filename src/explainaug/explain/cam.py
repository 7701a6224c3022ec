"""The machinery every class activation map (CAM) method shares.

A CAM method explains one layer of the model: a forward pass records the layer's output
``A [B, K, h, w]`` (and, for gradient methods, one ``autograd.grad`` of the target scores with
respect to it, so the backward pass stops at the layer); the methods differ only in how they
weigh and sum the channels. :class:`CAM` holds the layer, the capture and the conversion of the
layer-resolution map to a non-negative map at input resolution (ReLU, bilinear upsampling).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Callable

import torch
from torch import Tensor, nn

from explainaug._shared import upsample
from explainaug.explain._base import (
    Explainer,
    captured_outputs,
    check_target_range,
    class_scores,
)
from explainaug.explain.layers import LayerSpec, cam_layer, resolve_layer

Reshape = Callable[[Tensor], Tensor] | str | None


def tokens_to_maps(
    tokens: Tensor, prefix_tokens: int = 1, grid: tuple[int, int] | None = None
) -> Tensor:
    """Transformer tokens ``[B, N, C]`` -> feature maps ``[B, C, h, w]``.

    The first ``prefix_tokens`` tokens (class, distillation and register tokens) are dropped;
    the rest are the patches in row-major order on a ``grid = (h, w)`` (``None``: square).
    pytorch-grad-cam's ``reshape_transform`` for ViTs does the same.

    Example:
        >>> tokens_to_maps(torch.zeros(2, 1 + 6, 8), 1, (2, 3)).shape
        torch.Size([2, 8, 2, 3])
    """
    if tokens.ndim != 3:
        raise ValueError(f"tokens must have shape [B, N, C], got {tuple(tokens.shape)}")
    patches = tokens[:, prefix_tokens:]
    count = patches.shape[1]
    if grid is None:
        side = math.isqrt(count)
        grid = (side, side)
    if grid[0] * grid[1] != count:
        raise ValueError(
            f"{count} patch tokens (after {prefix_tokens} prefix tokens) do not fill a "
            f"{grid[0]}x{grid[1]} grid"
        )
    return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def auto_reshape(model: nn.Module, tokens: Tensor) -> Tensor:
    """``reshape="auto"``: feature maps pass; tokens ``[B, N, C]`` become ``[B, C, h, w]``.

    The prefix tokens are ``model.num_prefix_tokens`` (timm ViTs: class, distillation and
    register tokens) and the grid ``model.patch_embed.grid_size`` when they fit ``N``; otherwise
    ``N`` must be a square (no prefix) or a square plus one (a class token).

    Example:
        >>> auto_reshape(nn.Identity(), torch.zeros(2, 1 + 9, 4)).shape
        torch.Size([2, 4, 3, 3])
    """
    if tokens.ndim != 3:
        return tokens
    count = tokens.shape[1]
    prefix = getattr(model, "num_prefix_tokens", None)
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if isinstance(prefix, int) and grid is not None and prefix + grid[0] * grid[1] == count:
        return tokens_to_maps(tokens, prefix, tuple(grid))
    candidates = [prefix] if isinstance(prefix, int) else [0, 1]
    for prefix_tokens in candidates:
        if 0 <= prefix_tokens < count and math.isqrt(count - prefix_tokens) ** 2 == (
            count - prefix_tokens
        ):
            return tokens_to_maps(tokens, prefix_tokens)
    raise ValueError(
        f"cannot lay {count} tokens out on a grid; pass reshape= a callable mapping [B, N, C] to "
        "[B, C, h, w], e.g. lambda t: tokens_to_maps(t, prefix_tokens=1, grid=(h, w))"
    )


def as_feature_maps(output: object, reshape: Reshape, model: nn.Module, layer_name: str) -> Tensor:
    """The captured output of ``layer_name`` as feature maps ``[B, K, h, w]``, via ``reshape``.

    Example:
        >>> as_feature_maps(torch.zeros(1, 5, 2), "auto", nn.Identity(), "block").shape
        torch.Size([1, 2, 2, 2])
    """
    if not isinstance(output, Tensor):
        raise ValueError(
            f"layer {layer_name!r} gave no tensor output in the forward pass "
            f"(got {type(output).__name__}); was it called?"
        )
    if output.ndim == 3 and reshape is None:
        raise ValueError(
            f"layer {layer_name!r} outputs tokens {tuple(output.shape)} [B, N, C], not feature "
            "maps; pass reshape='auto' (timm ViTs) or a callable mapping them to [B, C, h, w]"
        )
    if reshape == "auto":
        maps = auto_reshape(model, output)
    elif reshape is None:
        maps = output
    else:
        maps = reshape(output)
    if not isinstance(maps, Tensor) or maps.ndim != 4:
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(
            f"layer {layer_name!r} must output [B, C, h, w] feature maps (4-D, after reshape), "
            f"got shape {shape}"
        )
    return maps


def check_reshape(reshape: object) -> Reshape:
    """Raise ``TypeError`` unless ``reshape`` is ``"auto"``, ``None`` or a callable."""
    if reshape is None or reshape == "auto" or callable(reshape):
        return reshape
    raise TypeError(f"reshape must be 'auto', None or a callable, got {reshape!r}")


class CAM(Explainer):
    """Base class of the CAM methods: one layer, one capture, ReLU + upsampling to the input.

    Subclasses implement ``_attribute`` with ``_forward`` (logits and the layer's output) or
    ``_layer_gradients`` (also the target scores' gradient with respect to it).

    Args:
        layer: module or dotted name whose output is explained. ``None``: the model's default
            (``explain.layers.cam_layer`` decides), checked by one probe on the first call, which
            moves to the last layer with a spatial map where the default pools the images to
            1x1. A given layer with 1x1 maps is refused (its CAM is one constant). If the module
            runs more than once per forward pass, its last output is used.
        reshape: how the layer's output becomes feature maps ``[B, K, h, w]``: ``"auto"``
            (default) passes 4-D outputs and lays transformer tokens ``[B, N, C]`` out on their
            patch grid, dropping class and register tokens (``auto_reshape``); a callable does it
            your way (as pytorch-grad-cam's ``reshape_transform``); ``None`` accepts 4-D only.
            Gradients go through the same reshape.
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
        self.reshape = check_reshape(reshape)
        self.layer_name = cam_layer(model, layer)
        self.layer = None if self.layer_name is None else resolve_layer(model, self.layer_name)[1]
        #: Whether the layer was given (else the model's default, checked on the first call).
        self.layer_given = layer is not None
        self._probed = self.layer_given

    def _captured_layer(self, inputs: Tensor) -> nn.Module:
        """The explained module. A default (not given) layer is checked by a probe on the first
        call: without a known default, or where the default pools the images to 1x1, the last
        layer with a spatial map (``last_feature_layer``)."""
        if not self._probed:
            self.layer_name = cam_layer(self.model, example=inputs)
            self.layer = resolve_layer(self.model, self.layer_name)[1]
            self._probed = True
        assert self.layer is not None
        return self.layer

    def _forward_raw(self, inputs: Tensor) -> tuple[Tensor, object]:
        """Forward ``inputs``; return the logits and the layer's raw output."""
        with captured_outputs([self._captured_layer(inputs)]) as outputs:
            logits = self.model(inputs)
        return logits, outputs[0]

    def _forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """Forward ``inputs``; return the logits and the layer's output as feature maps."""
        logits, output = self._forward_raw(inputs)
        return logits, self._feature_maps(output, inputs)

    def _feature_maps(self, output: object, inputs: Tensor) -> Tensor:
        """The layer's ``output`` as feature maps ``[B, K, h, w]``; refuses 1x1 maps of larger
        images (their CAM is one constant)."""
        maps = as_feature_maps(output, self.reshape, self.model, self.layer_name)
        if maps.shape[2:].numel() == 1 and inputs.shape[2:].numel() > 1:
            height, width = inputs.shape[2:]
            raise ValueError(
                f"layer {self.layer_name!r} gives 1x1 feature maps for {height}x{width} images, so "
                "its CAM is one constant; choose an earlier layer (layer=) or larger images"
            )
        return maps

    def _layer_gradients(
        self,
        inputs: Tensor,
        target: Tensor | None,
        create_graph: bool,
        checked_target: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Forward ``inputs``; return the layer's feature maps, the target score's gradient with
        respect to them, and the targets used (``None`` resolved to the predicted class).

        ``checked_target`` (if given) is range-checked against the model's outputs. The gradient
        is taken with respect to the layer's raw output and reshaped like it.
        """
        if not inputs.requires_grad:
            # A layer that sees no parameter (e.g. the input normaliser) still needs a graph.
            inputs = inputs.detach().requires_grad_()
        logits, output = self._forward_raw(inputs)
        activations = self._feature_maps(output, inputs)
        check_target_range(checked_target, logits.shape[1])
        scores, target = class_scores(logits, target)
        (gradients,) = torch.autograd.grad(scores.sum(), output, create_graph=create_graph)
        gradients = as_feature_maps(gradients, self.reshape, self.model, self.layer_name)
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
