"""Integrated Grad-CAM (Sattarzadeh et al., ICASSP 2021), as the official code computes it.

Grad-CAM terms are summed along the straight path from a black (all-zero) image to the input:
interpolants ``x_s = (s / m) x`` for ``s = 0 .. m-1`` (the baseline is included, the input
itself is not), each with its own channel weights ``w_k(s) = mean_hw dS/dA_k(x_s)``, and

    L = sum_s ReLU(sum_k (A_k(x_s) - Abar_k) * w_k(s))      (no 1/m factor)

with ``Abar = 0`` (official code) or the baseline's activations (the paper's figure).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainaug._shared import image_step_chunks
from explainaug._validation import check_count
from explainaug.explain.cam import Reshape
from explainaug.explain.gradcam import GradCAM, gradcam_map
from explainaug.explain.layers import LayerSpec


class IntegratedGradCAM(GradCAM):
    """Integrated Grad-CAM at one layer, batched over images and path steps.

    All ``B * n_steps`` interpolants go through one forward and one backward pass (chunked by
    ``internal_batch_size``); the backward stops at the layer. ``attribute`` returns the
    non-negative map ``[B, 1, h, w]`` at the layer's resolution; ``__call__`` upsamples it
    bilinearly to the input size. Interpolants are independent only when the model is in eval
    mode (train-mode BatchNorm mixes the rows of a chunk).

    Args:
        model: classifier taking images in [0, 1] (it normalises inside) and returning logits.
            The all-zero image, i.e. black, is the baseline.
        n_steps: number of path steps ``m`` (50 in the paper).
        subtract_baseline: subtract the baseline image's activations ``A(0)`` (one extra
            forward pass) instead of zero.
        internal_batch_size: most interpolants per forward/backward pass; ``None`` runs all
            ``B * n_steps`` at once.

    ``target=None`` explains the class predicted for the input itself (one extra forward).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> igcam = IntegratedGradCAM(SmallCNN(num_classes=3, width=4).eval(), n_steps=4)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> igcam.attribute(x, target=0).shape, igcam(x, target=0).shape
        (torch.Size([2, 1, 8, 8]), torch.Size([2, 1, 32, 32]))
    """

    def __init__(
        self,
        model: nn.Module,
        layer: LayerSpec | None = None,
        *,
        n_steps: int = 50,
        subtract_baseline: bool = False,
        internal_batch_size: int | None = None,
        reshape: Reshape = "auto",
        check_values: bool = True,
    ) -> None:
        super().__init__(model, layer, relu=True, reshape=reshape, check_values=check_values)
        check_count(n_steps, "n_steps")
        check_count(internal_batch_size, "internal_batch_size", optional=True)
        self.n_steps = n_steps
        self.subtract_baseline = subtract_baseline
        self.internal_batch_size = internal_batch_size

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        batch, steps = x.shape[0], self.n_steps
        checked_target = target if self.check_values else None  # checked once, in chunk one
        if target is None:
            target = self._predicted(x)
        baseline = self._forward(torch.zeros_like(x[:1]))[1] if self.subtract_baseline else None
        alphas = torch.arange(steps, device=x.device, dtype=x.dtype) / steps
        step_maps = []
        for start, image, step in image_step_chunks(
            batch, steps, self.internal_batch_size, x.device
        ):
            interpolants = x[image] * alphas[step].view(-1, 1, 1, 1)
            activations, gradients, _ = self._layer_gradients(
                interpolants,
                target[image],
                create_graph,
                checked_target=checked_target if start == 0 else None,
            )
            if not create_graph:  # let each chunk's graph go before the next one is built
                activations = activations.detach()
            if baseline is not None:
                activations = activations - baseline
            step_maps.append(gradcam_map(activations, gradients).relu())
        maps = torch.cat(step_maps)
        return maps.view(batch, steps, *maps.shape[1:]).sum(dim=1)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({type(self.model).__name__}, layer={self.layer_name!r}, "
            f"n_steps={self.n_steps})"
        )
