"""Grad-CAM (Selvaraju et al., 2017) and its gradient-weighted variants, batched and differentiable.

All of them take the target score's gradient ``g = dS/dA`` with respect to a convolutional
layer's output ``A`` (one forward pass and one ``autograd.grad`` that stops at the layer) and
differ only in how they combine ``A`` and ``g``:

=================  ============================================================================
Grad-CAM           ``sum_k mean_hw(g_k) A_k``
Grad-CAM++         ``sum_k (sum_hw relu(g_k) a_k) A_k``, ``a = g^2 / (2 g^2 + sum_hw(A_k) g^3 + 1e-6)``
XGrad-CAM          ``sum_k (sum_hw g_k A_k / (sum_hw A_k + 1e-7)) A_k``
HiResCAM           ``sum_k g_k * A_k`` (element-wise)
LayerCAM           ``sum_k relu(g_k) * A_k`` (element-wise)
=================  ============================================================================

The weights are those pytorch-grad-cam computes (Grad-CAM++: the closed form of the paper's
eq. 19 applied to the logit's gradients, with ``a = 0`` where ``g = 0``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainaug._shared import upsample
from explainaug.explain.cam import GradientCAM, Reshape
from explainaug.explain.layers import LayerSpec


def gradcam_map(activations: Tensor, gradients: Tensor) -> Tensor:
    """Grad-CAM's channel-weighted sum, ``[N, K, h, w]`` -> ``[N, 1, h, w]``.

    ``sum_k mean_hw(gradients_k) * activations_k``.

    Example:
        >>> gradcam_map(torch.ones(1, 2, 2, 2), torch.full((1, 2, 2, 2), 0.5)).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    return (weights * activations).sum(dim=1, keepdim=True)


class GradCAM(GradientCAM):
    """Grad-CAM at one layer of the model.

    ``attribute`` returns Captum ``LayerGradCam``'s raw output (``relu_attributions=False``):
    ``[B, 1, h, w]`` at the layer's resolution, signed. ``__call__`` turns it into a
    non-negative map at the input resolution (bilinear upsampling).

    Args:
        relu: ``True`` (Grad-CAM) clamps negative evidence to zero before upsampling. ``False``
            keeps it and shifts each upsampled map by its minimum instead, which orders pixels
            as min-max normalising a non-ReLU'd Captum map does (the official ExCon pipeline).

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
        *,
        relu: bool = True,
        reshape: Reshape = "auto",
        check_values: bool = True,
    ) -> None:
        super().__init__(model, layer, reshape=reshape, check_values=check_values)
        self.relu = relu

    combine = staticmethod(gradcam_map)

    def _to_maps(self, raw: Tensor, x: Tensor) -> Tensor:
        if self.relu:
            return super()._to_maps(raw, x)
        maps = upsample(raw, tuple(x.shape[-2:]))
        return maps - maps.amin(dim=(2, 3), keepdim=True)


class GradCAMPlusPlus(GradientCAM):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018) at one layer, as pytorch-grad-cam computes it.

    Channel weights ``w_k = sum_hw relu(g) a`` with ``a = g^2 / (2 g^2 + sum_hw(A_k) g^3 +
    1e-6)`` (``a = 0`` where ``g <= 0``, which ``relu(g)`` zeroes anyway), ``g`` the logit's
    gradient. ``attribute`` returns ``sum_k w_k A_k`` ``[B, 1, h, w]``; ``__call__`` its ReLU
    upsampled bilinearly to the input. Arguments as in :class:`GradCAM` (always ReLU'd).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> cam = GradCAMPlusPlus(SmallCNN(num_classes=3, width=4).eval())
        >>> cam(torch.rand(2, 3, 32, 32), target=1).shape
        torch.Size([2, 1, 32, 32])
    """

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        squared = gradients.square()
        area_sum = activations.sum(dim=(2, 3), keepdim=True)
        positive = gradients > 0
        # Only positive gradients count; masking the denominator keeps the graph NaN-free.
        denominator = torch.where(positive, 2 * squared + area_sum * squared * gradients + 1e-6, 1)
        alpha = torch.where(positive, squared / denominator, 0)
        weights = (gradients.relu() * alpha).sum(dim=(2, 3), keepdim=True)
        return (weights * activations).sum(dim=1, keepdim=True)


class XGradCAM(GradientCAM):
    """XGrad-CAM (Fu et al., BMVC 2020) at one layer.

    Channel weights ``w_k = sum_hw(g_k A_k) / (sum_hw A_k + 1e-7)``; ``attribute`` returns
    ``sum_k w_k A_k`` ``[B, 1, h, w]``, ``__call__`` its ReLU upsampled to the input.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> XGradCAM(SmallCNN(num_classes=3, width=4).eval()).attribute(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 1, 2, 2])
    """

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        area_sum = activations.sum(dim=(2, 3), keepdim=True)
        weights = (gradients * activations).sum(dim=(2, 3), keepdim=True) / (area_sum + 1e-7)
        return (weights * activations).sum(dim=1, keepdim=True)


class HiResCAM(GradientCAM):
    """HiResCAM (Draelos & Carin, 2020): ``sum_k g_k * A_k`` element-wise, no spatial averaging.

    ``attribute`` returns the signed map ``[B, 1, h, w]``; ``__call__`` its ReLU upsampled.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> HiResCAM(SmallCNN(num_classes=3, width=4).eval())(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 1, 8, 8])
    """

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        return (gradients * activations).sum(dim=1, keepdim=True)


class LayerCAM(GradientCAM):
    """LayerCAM (Jiang et al., TIP 2021): ``sum_k relu(g_k) * A_k`` element-wise.

    ``attribute`` returns the map ``[B, 1, h, w]`` at the layer's resolution; ``__call__`` its
    ReLU upsampled to the input.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> LayerCAM(SmallCNN(num_classes=3, width=4).eval())(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 1, 8, 8])
    """

    @staticmethod
    def combine(activations: Tensor, gradients: Tensor) -> Tensor:
        return (gradients.relu() * activations).sum(dim=1, keepdim=True)
