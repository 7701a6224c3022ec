"""Score-CAM (Wang et al., CVPR-W 2020): channels weighted by the score of the image they mask.

Every channel ``A_k`` of the layer, upsampled to the input and min-max normalised, masks the
image; the model's output for the masked image weighs the channel. All (image, channel) pairs
of the batch are flattened and scored in chunks of ``internal_batch_size`` masked images, so
memory is bounded and no Python loop runs over images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._shared import minmax_normalize, upsample
from explainaug._validation import check_count
from explainaug.explain._base import class_scores
from explainaug.explain.cam import CAM, Reshape
from explainaug.explain.layers import LayerSpec

VARIANTS = ("paper", "pytorch-grad-cam")


class ScoreCAM(CAM):
    """Score-CAM at one layer, batched over images and channels.

    ``variant="paper"`` (default) computes what the authors' code computes: ``M_k = up(A_k)``
    (bilinear, ``align_corners=False``), ``N_k = minmax(M_k)``, ``s_k = softmax(f(x * N_k))[c]``
    and ``attribute = sum_k s_k M_k`` ``[B, 1, H, W]`` at input resolution; channels whose map is
    constant are skipped (tested before upsampling: the official code tests after it, where
    rounding can make a constant map vary by an ulp and min-max blows that up into a mask). ``variant="pytorch-grad-cam"`` computes pytorch-grad-cam's version:
    masks upsampled with ``align_corners=True`` and min-max normalised with ``+1e-8``, weights
    ``softmax_k(f(x * N_k)[c])`` over the channels' target logits, and ``attribute = sum_k w_k
    A_k`` ``[B, 1, h, w]`` at the layer's resolution. ``__call__`` returns the ReLU of
    ``attribute`` upsampled bilinearly to the input.

    The masked images are scored without a graph: ``create_graph=True`` raises ``ValueError``.
    The model runs in its current mode; in train mode BatchNorm mixes the images of a chunk.

    Args:
        model: classifier taking images in [0, 1] (the implicit baseline of masking is black)
            and returning logits.
        variant: ``"paper"`` or ``"pytorch-grad-cam"``.
        internal_batch_size: masked images per forward pass.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> cam = ScoreCAM(SmallCNN(num_classes=3, width=4).eval(), internal_batch_size=64)
        >>> x = torch.rand(2, 3, 16, 16)
        >>> cam.attribute(x, target=1).shape, cam(x, target=1).shape
        (torch.Size([2, 1, 16, 16]), torch.Size([2, 1, 16, 16]))
    """

    needs_gradients = False  # forward passes only
    differentiable = False

    def __init__(
        self,
        model: nn.Module,
        layer: LayerSpec | None = None,
        *,
        variant: str = "paper",
        internal_batch_size: int = 128,
        reshape: Reshape = "auto",
        check_values: bool = True,
    ) -> None:
        super().__init__(model, layer, reshape=reshape, check_values=check_values)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        check_count(internal_batch_size, "internal_batch_size")
        self.variant = variant
        self.internal_batch_size = internal_batch_size

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        with torch.no_grad():
            logits, activations = self._forward(x)
            _, target = self._checked_scores(logits, target)
            batch, channels = activations.shape[:2]
            if self.variant == "paper":
                flat = activations.flatten(2)
                image_index, channel_index = (flat.amax(dim=2) > flat.amin(dim=2)).nonzero().T
            else:
                pairs = torch.arange(batch * channels, device=x.device)
                image_index, channel_index = pairs // channels, pairs % channels
            size = (x.shape[2], x.shape[3])
            paper = self.variant == "paper"
            saliency = x.new_zeros(batch, *size) if paper else None
            all_scores = []
            for start in range(0, image_index.shape[0], self.internal_batch_size):
                images = image_index[start : start + self.internal_batch_size]
                maps = activations[images, channel_index[start : start + self.internal_batch_size]]
                maps = maps.unsqueeze(1).to(x.dtype)
                if paper:
                    upsampled = upsample(maps, size)
                    masks = minmax_normalize(upsampled)
                else:
                    upsampled = F.interpolate(maps, size=size, mode="bilinear", align_corners=True)
                    low = upsampled.amin(dim=(2, 3), keepdim=True)
                    span = upsampled.amax(dim=(2, 3), keepdim=True) - low
                    masks = (upsampled - low) / (span + 1e-8)
                outputs = self.model(x[images] * masks)
                if paper:
                    scores, _ = class_scores(outputs.softmax(dim=1), target[images])
                    saliency.index_add_(0, images, upsampled[:, 0] * scores[:, None, None])
                else:
                    all_scores.append(class_scores(outputs, target[images])[0])
            if paper:
                return saliency.unsqueeze(1)
            weights = torch.cat(all_scores).view(batch, channels).softmax(dim=1)
            return (weights[:, :, None, None] * activations).sum(dim=1, keepdim=True)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({type(self.model).__name__}, layer={self.layer_name!r}, "
            f"variant={self.variant!r})"
        )
