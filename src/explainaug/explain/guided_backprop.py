"""Guided backpropagation (Springenberg et al., 2015) with Captum's semantics.

At every ``nn.ReLU`` module the backward pass keeps only positive gradients, on top of the
ReLU's own mask of positive inputs. The attribution is the resulting input gradient.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack

import torch
from torch import Tensor, nn

from explainaug.explain._base import Explainer
from explainaug.explain.gradient import target_gradients


class _PositiveGradient(torch.autograd.Function):
    """Identity in the forward pass; clamps the incoming gradient at zero in the backward pass.

    The backward is written with differentiable ops, so it works under ``create_graph=True``.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, tensor: Tensor) -> Tensor:
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:
        return grad.clamp(min=0)


def _guide_relu_output(_module: nn.Module, _inputs: tuple, output: Tensor) -> Tensor:
    return _PositiveGradient.apply(output)


class GuidedBackprop(Explainer):
    """Guided backpropagation, matching Captum's ``GuidedBackprop``.

    Forward hooks on the model's ``nn.ReLU`` modules route each ReLU output through an identity
    whose backward clamps the gradient at zero, so the gradient leaving the ReLU is
    ``(input > 0) * relu(grad_output)``, exactly Captum's. As in Captum, functional ReLUs
    (``F.relu``, ``torch.relu``) are not guided; use ``nn.ReLU`` modules. Unlike Captum's
    backward hooks, a ReLU module called several times per forward pass is guided at every
    call. Hooks are removed when the call returns or raises.

    A model without ``nn.ReLU`` modules has nothing to guide: the constructor warns, and the
    result is the plain input gradient.

    ``attribute`` returns the guided input gradient ``[B, C, H, W]``; ``__call__`` returns its
    absolute value summed over channels.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> gbp = GuidedBackprop(SmallCNN(num_classes=3, width=4).eval())
        >>> gbp.attribute(torch.rand(2, 3, 16, 16), target=0).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, model: nn.Module, *, check_values: bool = True) -> None:
        super().__init__(model, check_values=check_values)
        if not any(isinstance(module, nn.ReLU) for module in model.modules()):
            warnings.warn(
                f"{type(model).__name__} has no nn.ReLU module to guide (GELU/SiLU networks, or "
                "functional ReLUs): Guided Backprop returns the plain input gradient",
                UserWarning,
                stacklevel=2,
            )

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        with ExitStack() as stack:
            for module in self.model.modules():
                if isinstance(module, nn.ReLU):
                    stack.callback(module.register_forward_hook(_guide_relu_output).remove)
            return target_gradients(self, x, target, create_graph)
