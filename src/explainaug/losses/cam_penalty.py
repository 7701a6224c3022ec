"""Grad-CAM penalties as the XIL typology framework implements them (Friedrich et al. 2023,
``xil_methods/xil_loss.py``): RRR-G (Schramowski et al. 2020) and HINT (Selvaraju et al. 2019).

Both normalise each image's Grad-CAM (signed, at the CAM layer) to
``A_hat = (A - min A) / (max(A - min A) + 1e-6)``:

- RRR-G (predicted class): ``sum (region_down * A_hat)^2``, the region downsampled to the CAM's
  size (bilinear, antialiased, as torchvision's ``Resize``);
- HINT (true class): ``sum (A_hat_up - relevant)^2``, the CAM upsampled to the input (bilinear).

Sums over pixels, means over the batch. ``second_order=False`` holds Grad-CAM's channel
weights constant (as Captum's ``LayerGradCam`` in the framework: the penalty trains the weights
through the layer's activations only); True differentiates them too (``GradCAM(...,
create_graph=True)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._shared import upsample
from explainaug.explain import GradCAM
from explainaug.explain.cam import as_feature_maps


def gradcam_terms(
    cam: GradCAM, x: Tensor, target: Tensor | None, *, second_order: bool = False
) -> tuple[Tensor, Tensor]:
    """``(logits, maps)``: one forward pass of ``cam.model`` on ``x`` and the signed Grad-CAM
    ``[B, 1, h, w]`` at ``cam``'s layer for ``target`` (None: the predicted class), in the
    graph of that forward pass (its channel weights too with ``second_order``).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> logits, maps = gradcam_terms(GradCAM(SmallCNN(num_classes=3, width=4)),
        ...                              torch.rand(2, 3, 32, 32), None)
        >>> logits.shape, maps.shape, maps.requires_grad
        (torch.Size([2, 3]), torch.Size([2, 1, 8, 8]), True)
    """
    logits, output = cam._forward_raw(x)
    activations = cam._feature_maps(output, x)
    if target is None:
        target = logits.detach().argmax(dim=1)
    (grads,) = torch.autograd.grad(
        logits.gather(1, target[:, None]).sum(),
        output,
        create_graph=second_order,
        retain_graph=True,
    )
    grads = as_feature_maps(grads, cam.reshape, cam.model, cam.layer_name)
    return logits, cam.combine(activations, grads)


def normalize_cam(maps: Tensor) -> Tensor:
    """The framework's per-image min-max scaling ``(A - min) / (max(A - min) + 1e-6)``.

    Example:
        >>> normalize_cam(torch.tensor([[[[-1.0, 1.0]]]])).tolist()
        [[[[0.0, 0.9999995231628418]]]]
    """
    shifted = maps - maps.flatten(1).amin(dim=1).view(-1, 1, 1, 1)
    return shifted / (shifted.flatten(1).amax(dim=1).view(-1, 1, 1, 1) + 1e-6)


def rrr_gradcam_penalty(maps: Tensor, region: Tensor) -> Tensor:
    """RRR-G: ``mean_n sum (region_down * normalize_cam(maps))^2`` with ``region [B, 1, H, W]``
    (1 = must not matter) resized to the maps' size.

    Example:
        >>> round(rrr_gradcam_penalty(torch.tensor([[[[0.0, 2.0]]]]), torch.ones(1, 1, 1, 2)).item(), 4)
        1.0
    """
    small = F.interpolate(region, size=maps.shape[-2:], mode="bilinear", antialias=True)
    return (small * normalize_cam(maps)).square().flatten(1).sum(dim=1).mean()


def hint_penalty(maps: Tensor, relevant: Tensor) -> Tensor:
    """HINT: ``mean_n sum (normalize_cam(maps)_up - relevant)^2`` with ``relevant
    [B, 1, H, W]`` (1 = should matter) and the maps upsampled to its size.

    Example:
        >>> hint_penalty(torch.tensor([[[[0.0, 2.0]]]]), torch.tensor([[[[0.0, 1.0]]]])).item() < 1e-9
        True
    """
    return (
        (upsample(normalize_cam(maps), tuple(relevant.shape[-2:])) - relevant)
        .square()
        .flatten(1)
        .sum(dim=1)
        .mean()
    )


class RRRGradCAMLoss(nn.Module):
    """``CE + weight * rrr_gradcam_penalty`` of Grad-CAM for the predicted class.

    Args:
        cam: the Grad-CAM of the model being trained (``cam.model``; its layer is penalised).
        weight: the penalty's weight (the framework's rate, without its automatic scale).
        second_order: differentiate the channel weights too.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> loss = RRRGradCAMLoss(GradCAM(model))(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]),
        ...                                      torch.ones(2, 1, 32, 32))
        >>> loss.shape
        torch.Size([])
    """

    def __init__(self, cam: GradCAM, weight: float = 1.0, *, second_order: bool = False) -> None:
        super().__init__()
        self.cam = cam
        self.weight = weight
        self.second_order = second_order

    def forward(self, x: Tensor, y: Tensor, region: Tensor) -> Tensor:
        logits, maps = gradcam_terms(self.cam, x, None, second_order=self.second_order)
        return F.cross_entropy(logits, y) + self.weight * rrr_gradcam_penalty(maps, region)


class HINTLoss(RRRGradCAMLoss):
    """``CE + weight * hint_penalty`` of Grad-CAM for the true class; ``relevant`` is the
    region that should matter (arguments as :class:`RRRGradCAMLoss`).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> loss = HINTLoss(GradCAM(model))(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]),
        ...                                torch.ones(2, 1, 32, 32))
        >>> loss.shape
        torch.Size([])
    """

    def forward(self, x: Tensor, y: Tensor, relevant: Tensor) -> Tensor:
        logits, maps = gradcam_terms(self.cam, x, y, second_order=self.second_order)
        return F.cross_entropy(logits, y) + self.weight * hint_penalty(maps, relevant)
