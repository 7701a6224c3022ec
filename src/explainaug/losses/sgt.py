"""Saliency Guided Training (Ismail, Corrada Bravo & Feizi, NeurIPS 2021), as its official code
(``ayaabdelsalam91/saliency_guided_training``, ``Scripts/interpretable.py:60-124``):

1. saliency: the signed gradient of ``log p(y | x)`` (the true class), averaged over channels,
   from the model in eval mode (its mode is restored afterwards);
2. the ``k = int(fraction * H * W)`` pixels with the *lowest* signed saliency (most negative,
   not smallest magnitude) get i.i.d. uniform values in ``[min, max]`` of their image, every
   channel (``--RandomMasking``, as the repository's recommended run; without that flag the
   official code fills with pixel (0, 0, 0) of the batch's first image, MNIST's background,
   which has no such meaning on other data: the one deviation from its argument defaults);
3. loss ``CE(f(x), y) + weight * KL(p(x) || p(x_masked))``, batch mean; the clean output is not
   detached, the masked images are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._shared import eval_mode, preserved_model_state


def sgt_saliency(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The signed gradient of ``log p(y | x)`` averaged over channels, ``[B, 1, H, W]``, of
    ``model`` in eval mode (its modes and BatchNorm statistics are restored). No graph.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> sgt_saliency(SmallCNN(num_classes=3, width=4), torch.rand(2, 3, 8, 8),
        ...              torch.tensor([0, 1])).shape
        torch.Size([2, 1, 8, 8])
    """
    with preserved_model_state(model), eval_mode(model), torch.enable_grad():
        inputs = x.detach().requires_grad_()
        log_probs = F.log_softmax(model(inputs).float(), dim=1)
        (grads,) = torch.autograd.grad(log_probs.gather(1, y[:, None]).sum(), inputs)
    return grads.mean(dim=1, keepdim=True)


def bottom_k_mask(saliency: Tensor, fraction: float) -> Tensor:
    """Bool ``[B, 1, H, W]``: the ``int(fraction * H * W)`` pixels of each map with the lowest
    (signed) saliency.

    Example:
        >>> bottom_k_mask(torch.tensor([[[[3.0, -1.0, 0.5, -4.0]]]]), 0.5).flatten().tolist()
        [False, True, False, True]
    """
    flat = saliency.flatten(1)
    k = int(fraction * flat.shape[1])
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    if k > 0:
        chosen.scatter_(1, flat.topk(k, dim=1, largest=False).indices, True)
    return chosen.view_as(saliency)


def random_fill(x: Tensor, mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``x`` with the pixels of ``mask [B, 1, H, W]`` replaced by i.i.d. uniform values in
    ``[min, max]`` of each image (every channel drawn separately).

    Example:
        >>> x = torch.tensor([[[[0.2, 0.6]]]])
        >>> filled = random_fill(x, torch.tensor([[[[True, False]]]]))
        >>> 0.2 <= float(filled[0, 0, 0, 0]) <= 0.6, bool(filled[0, 0, 0, 1] == x[0, 0, 0, 1])
        (True, True)
    """
    low = x.flatten(1).amin(dim=1).view(-1, 1, 1, 1)
    high = x.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return torch.where(mask, low + (high - low) * noise, x)


def kl_clean_masked(clean_logits: Tensor, masked_logits: Tensor) -> Tensor:
    """``KL(p(x) || p(x_masked))`` averaged over the batch (the official
    ``KLDivLoss(log_target=True, reduction="batchmean")(masked, clean)``).

    Example:
        >>> kl_clean_masked(torch.zeros(1, 2), torch.zeros(1, 2)).item()
        0.0
    """
    return F.kl_div(
        F.log_softmax(masked_logits, dim=1),
        F.log_softmax(clean_logits, dim=1),
        log_target=True,
        reduction="batchmean",
    )


class SGTLoss(nn.Module):
    """``CE(f(x), y) + weight * KL(p(x) || p(x_masked))`` with ``x_masked`` the images whose
    ``fraction`` least salient pixels are random (see the module docstring). The masked forward
    pass leaves BatchNorm running statistics alone (the clean one updates them).

    Args:
        model: the classifier being trained (images in [0, 1]).
        fraction: the share of pixels replaced (official default 0.1).
        weight: the KL term's weight (official: 1).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> loss_fn = SGTLoss(SmallCNN(num_classes=3, width=4))
        >>> loss_fn(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])).shape
        torch.Size([])
    """

    def __init__(self, model: nn.Module, fraction: float = 0.1, weight: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.fraction = fraction
        self.weight = weight

    def terms(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(clean logits, cross-entropy, KL)`` of images ``x`` in [0, 1], labels ``y``."""
        masked = random_fill(x, bottom_k_mask(sgt_saliency(self.model, x, y), self.fraction))
        logits = self.model(x)
        with preserved_model_state(self.model):
            masked_logits = self.model(masked.detach())
        return logits, F.cross_entropy(logits, y), kl_clean_masked(logits, masked_logits)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        _, cross_entropy, kl = self.terms(x, y)
        return cross_entropy + self.weight * kl

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}, weight={self.weight:g}"
