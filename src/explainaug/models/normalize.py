"""Per-channel input normalisation as the first layer of a model.

Every image in explainaug is a float tensor in [0, 1]. Models normalise inside, so attacks,
corruptions, fills and colour augmentations all work in pixel space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class Normalize(nn.Module):
    """Compute ``(x - mean) / std`` per channel (training statistics of images in [0, 1]);
    identity when ``mean`` and ``std`` are None.

    Example:
        >>> Normalize((0.5,), (0.25,))(torch.ones(1, 1, 2, 2)).flatten().tolist()
        [2.0, 2.0, 2.0, 2.0]
    """

    def __init__(
        self, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
    ) -> None:
        super().__init__()
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.enabled = mean is not None
        if self.enabled:
            mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
            std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
            if mean_t.shape != std_t.shape:
                raise ValueError(
                    f"mean and std must have the same length, got {len(mean_t)} and {len(std_t)}"
                )
            if not bool((std_t > 0).all()):
                raise ValueError(f"std must be > 0 in every channel, got {std_t.tolist()}")
            self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
            self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if not self.enabled:
            return x
        return (x - self.mean) / self.std


def model_mean(model: nn.Module) -> list[float] | None:
    """The per-channel dataset mean of the model's input ``Normalize`` layer (None without one):
    0 in the model's normalised input space, the fill colour of the official ExCon/EDDA masks
    and of the reference Average Drop / deletion evaluations.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model_mean(SmallCNN(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2)))
        [0.5, 0.4000000059604645, 0.30000001192092896]
    """
    for module in model.modules():
        if isinstance(module, Normalize) and module.enabled:
            return module.mean.flatten().tolist()
    return None
