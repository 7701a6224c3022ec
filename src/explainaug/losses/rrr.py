"""Right for the Right Reasons (Ross, Hughes & Doshi-Velez, IJCAI 2017): cross-entropy plus the
squared input gradient of the summed log-probabilities inside a region that must not matter.

Ross et al.'s loss (``dtak/rrr``, ``multilayer_perceptron.py:124-133``) on raw 0-255 pixels::

    sum_n CE_n + lambda * sum_n sum_d (A_nd * d/dx_nd sum_k log p(k | x_n))^2

with lambda = 1000 on DecoyMNIST. Here images are in [0, 1] (gradients 255x larger, squared
65025x) and both terms are batch means, so the same weight is ``1000 / 255**2``
(``RRR_WEIGHT``). The gradient is taken with ``create_graph=True`` (double backpropagation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RRR_WEIGHT = 1000 / 255**2
"""Ross et al.'s DecoyMNIST weight (1000 on 0-255 pixels) for images in [0, 1]."""


def input_gradient_penalty(model: nn.Module, x: Tensor, region: Tensor) -> tuple[Tensor, Tensor]:
    """``(logits, penalty)``: one forward pass of images ``x`` and the RRR penalty
    ``mean_n sum_d (region * d/dx sum_k log p_k)^2``, differentiable w.r.t. the parameters.

    Args:
        model: classifier of images in [0, 1] (it normalises inside), returning logits.
        x: images ``[B, C, H, W]`` in [0, 1].
        region: where the gradient must vanish, ``[B, 1, H, W]`` or ``[B, C, H, W]`` (1 inside).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> logits, penalty = input_gradient_penalty(
        ...     SmallCNN(num_classes=3, width=4), torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8))
        >>> logits.shape, penalty.shape
        (torch.Size([2, 3]), torch.Size([]))
    """
    inputs = x.detach().requires_grad_()
    logits = model(inputs)
    (grads,) = torch.autograd.grad(F.log_softmax(logits, dim=1).sum(), inputs, create_graph=True)
    return logits, (region * grads).square().flatten(1).sum(dim=1).mean()


class RRRLoss(nn.Module):
    """``CE(model(x), y) + weight * input_gradient_penalty(model, x, region)``.

    Args:
        model: the classifier being trained.
        weight: the penalty's weight (default ``RRR_WEIGHT``, Ross et al.'s DecoyMNIST value).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> loss = RRRLoss(SmallCNN(num_classes=3, width=4))(
        ...     torch.rand(2, 3, 8, 8), torch.tensor([0, 2]), torch.ones(2, 1, 8, 8))
        >>> loss.shape
        torch.Size([])
    """

    def __init__(self, model: nn.Module, weight: float = RRR_WEIGHT) -> None:
        super().__init__()
        self.model = model
        self.weight = weight

    def forward(self, x: Tensor, y: Tensor, region: Tensor) -> Tensor:
        logits, penalty = input_gradient_penalty(self.model, x, region)
        return F.cross_entropy(logits, y) + self.weight * penalty

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}"
