"""Input-gradient saliency: the gradient of the target logit (Saliency) and gradient x input.

Images are float ``[B, C, H, W]`` in [0, 1]; models normalise inside. Both methods need one
forward and one backward pass, and with ``create_graph=True`` their output is differentiable
w.r.t. the model's parameters (double backpropagation), unlike Captum's.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainaug.explain._base import Explainer


def target_gradients(
    explainer: Explainer, inputs: Tensor, target: Tensor | None, create_graph: bool
) -> Tensor:
    """Gradient of each input's target logit w.r.t. that input, ``[N, C, H, W]``.

    Inputs that already require grad are differentiated in place when ``create_graph`` is on,
    so the result keeps their history; otherwise a detached copy is used.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> saliency = Saliency(SmallCNN(num_classes=3, width=4).eval())
        >>> target_gradients(saliency, torch.rand(2, 3, 8, 8), None, False).shape
        torch.Size([2, 3, 8, 8])
    """
    if not (create_graph and inputs.requires_grad):
        inputs = inputs.detach().requires_grad_(True)
    scores, _ = explainer._scores(inputs, target)
    (grads,) = torch.autograd.grad(scores.sum(), inputs, create_graph=create_graph)
    return grads


class Saliency(Explainer):
    """Gradient of the target logit w.r.t. the input pixels (Simonyan et al., 2014).

    Args:
        abs: return the absolute gradient, as Captum's ``Saliency.attribute(abs=True)``.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> saliency = Saliency(SmallCNN(num_classes=3, width=4).eval())
        >>> saliency(torch.rand(2, 3, 8, 8), target=1).shape
        torch.Size([2, 1, 8, 8])
    """

    def __init__(self, model: nn.Module, abs: bool = True, *, check_values: bool = True) -> None:
        super().__init__(model, check_values=check_values)
        self.abs = abs

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        grads = target_gradients(self, x, target, create_graph)
        return grads.abs() if self.abs else grads


class InputXGradient(Explainer):
    """Input times the gradient of the target logit (Shrikumar et al., 2016), signed.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> explainer = InputXGradient(SmallCNN(num_classes=3, width=4).eval())
        >>> explainer.attribute(torch.rand(2, 3, 8, 8), target=0).shape
        torch.Size([2, 3, 8, 8])
    """

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        return x * target_gradients(self, x, target, create_graph)
