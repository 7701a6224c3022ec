"""Hand-built models and explainers with known answers for the explanation metrics.

Test modules wrap ``make_pixel_model`` and ``make_row_maps`` in fixtures.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainaug.explain import Explainer


class PixelModel(nn.Module):
    """Two classes: logit 0 is a constant ``bias0``, logit 1 is ``sum(weight * x)``.

    So ``p_1(x) = sigmoid(sum(weight * x) - bias0)`` depends on known pixels only.
    """

    def __init__(self, weight: Tensor, bias0: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias0 = bias0

    def forward(self, x: Tensor) -> Tensor:
        evidence = (x * self.weight).flatten(1).sum(dim=1)
        return torch.stack([torch.full_like(evidence, self.bias0), evidence], dim=1)


class FixedMaps(Explainer):
    """Returns the given maps ``[B, 1, H, W]`` whatever the input."""

    def __init__(self, model: nn.Module, maps: Tensor) -> None:
        super().__init__(model)
        self.maps = maps

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        return self.maps[: x.shape[0]].clone()


def make_pixel_model() -> PixelModel:
    """1x4x4 images; row 0 weighs +1 per pixel, row 3 weighs -0.5; bias0 = 1.

    On an all-ones image the evidence is 4 - 2 = 2, so class 1 is predicted with sigmoid(1).
    """
    weight = torch.zeros(1, 4, 4)
    weight[0, 0] = 1.0
    weight[0, 3] = -0.5
    return PixelModel(weight, bias0=1.0)


def make_row_maps() -> Tensor:
    """Image 0 ranks rows top to bottom (row 0 most salient); image 1 ranks them bottom up."""
    rows = torch.tensor([4.0, 3.0, 2.0, 1.0])[:, None].expand(4, 4)
    return torch.stack([rows, rows.flip(0)])[:, None].contiguous()
