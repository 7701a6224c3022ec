"""CDEP's explanation penalty (Rieger et al., ICML 2020) and its annotation-free pixel prior.

The penalty of a region ("blob") is the mean, over images and classes, of the relevant share
of the softmax over the contextual decomposition ``(rel, irrel)`` of each logit,
``sigmoid(rel - irrel)`` (official ``src/score_funcs.py:12-14``); several blobs add up (the
official loop over blobs). The single-pixel prior of CDEP's ColorMNIST experiment penalises
single pixels (all channels), drawn with probability proportional to how often a pixel is
non-zero in the training images, 8 per step (``mnist/ColorMNIST/train.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from explainaug._shared import unpack_batch
from explainaug._validation import check_count, check_images, check_tensor
from explainaug.explain.decomposition import ContextualDecomposition
from explainaug.settings import PIXEL_DRAWS


def cdep_penalty(rel: Tensor, irrel: Tensor) -> Tensor:
    """CDEP's penalty of decomposed logits: ``mean_{n,k} sigmoid(rel_nk - irrel_nk)``, the
    relevant share of a softmax over each pair, summed over blobs.

    Args:
        rel: logits' part from the penalised region, ``[B, K]`` or ``[P, B, K]`` for P blobs.
        irrel: the rest, shaped like ``rel``.

    Example:
        >>> cdep_penalty(torch.zeros(2, 3), torch.zeros(2, 3)).item()
        0.5
        >>> cdep_penalty(torch.zeros(4, 2, 3), torch.zeros(4, 2, 3)).item()  # 4 blobs
        2.0
    """
    rel, irrel = check_tensor(rel, "rel"), check_tensor(irrel, "irrel")
    if rel.shape != irrel.shape or rel.ndim not in (2, 3):
        raise ValueError(
            f"rel and irrel must have the same shape [B, K] or [P, B, K], got "
            f"{tuple(rel.shape)} and {tuple(irrel.shape)}"
        )
    shares = torch.sigmoid(rel - irrel)
    return shares.mean() if rel.ndim == 2 else shares.mean(dim=(1, 2)).sum()


class CDEPPenalty:
    """CDEP's penalty of ``model`` for regions of its input, by contextual decomposition.

    Args:
        model: the classifier being trained (see ``ContextualDecomposition`` for the layers it
            can decompose; the decomposition uses BatchNorm's running statistics and never
            changes the model's mode).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> penalty = CDEPPenalty(SmallCNN(num_classes=3, width=4))
        >>> x, masks = torch.rand(2, 3, 16, 16), torch.zeros(2, 1, 16, 16)
        >>> masks[:, :, :4, :4] = 1
        >>> penalty(x, masks).shape
        torch.Size([])
    """

    def __init__(self, model: nn.Module) -> None:
        self.decomposition = ContextualDecomposition(model)

    def __call__(self, x: Tensor, masks: Tensor) -> Tensor:
        """The penalty of the regions ``masks`` of the images ``x``.

        Args:
            x: images ``[B, C, H, W]`` as the model takes them.
            masks: penalised regions, 1 inside: ``[B, 1 or C, H, W]`` (one per image) or
                ``[P, B or 1, 1 or C, H, W]`` (P blobs per image, their penalties added),
                float in [0, 1] or bool.
        """
        check_images(x, finite=False)
        masks = check_tensor(masks, "masks")
        if masks.ndim == 4:
            masks = masks.unsqueeze(0)
        if masks.ndim != 5:
            raise ValueError(
                f"masks must have shape [B, 1 or C, H, W] or [P, B, 1 or C, H, W], got "
                f"{tuple(masks.shape)}"
            )
        blobs, batch = masks.shape[0], x.shape[0]
        if masks.shape[1] not in (1, batch):
            raise ValueError(
                f"masks must hold one mask per image ({batch}) or one for the batch, got "
                f"{masks.shape[1]} in shape {tuple(masks.shape)}"
            )
        masks = masks.expand(blobs, batch, *masks.shape[2:]).flatten(0, 1)
        images = x.unsqueeze(0).expand(blobs, *x.shape).flatten(0, 1)
        rel, irrel = self.decomposition(images, masks)
        return cdep_penalty(rel.view(blobs, batch, -1), irrel.view(blobs, batch, -1))

    def __repr__(self) -> str:
        return f"CDEPPenalty({type(self.decomposition.model).__name__})"


def single_pixel_masks(
    x: Tensor,
    pixels: int = 8,
    weights: Tensor | None = None,
    draw: str = "batch",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Masks of single pixels (all channels) for CDEP's annotation-free prior.

    Args:
        x: the images ``[B, C, H, W]`` the masks are for.
        pixels: pixels per image (blobs, each penalised on its own); the official 8.
        weights: the probability of each pixel, ``[H * W]`` (any positive scale; see
            ``nonzero_frequency``), or None for uniform.
        draw: ``"batch"`` (official): the same ``pixels`` pixels for every image of the batch;
            ``"image"``: each image draws its own, so a step covers ``B`` times more distinct
            pixels at the same cost.
        generator: random generator on ``x``'s device.

    Returns:
        ``[pixels, B or 1, 1, H, W]`` float masks, one pixel set to 1 in each.

    Example:
        >>> masks = single_pixel_masks(torch.rand(5, 3, 4, 4), pixels=2, draw="image")
        >>> masks.shape, masks.sum(dim=(2, 3, 4)).unique().tolist()
        (torch.Size([2, 5, 1, 4, 4]), [1.0])
    """
    check_images(x, finite=False)
    check_count(pixels, "pixels")
    if draw not in PIXEL_DRAWS:
        raise ValueError(f"draw must be one of {PIXEL_DRAWS}, got {draw!r}")
    height, width = x.shape[2:]
    if weights is None:
        weights = x.new_ones(height * width)
    elif weights.shape != (height * width,):
        raise ValueError(
            f"weights must have shape [H * W] = [{height * width}], got {tuple(weights.shape)}"
        )
    rows = x.shape[0] if draw == "image" else 1
    chosen = torch.multinomial(
        weights.to(x.device, torch.float32).expand(rows, -1),
        pixels,
        replacement=True,
        generator=generator,
    )  # [rows, pixels]
    masks = x.new_zeros(pixels, rows, height * width)
    masks.scatter_(2, chosen.t().unsqueeze(2), 1.0)
    return masks.view(pixels, rows, 1, height, width)


def nonzero_frequency(batches: Iterable) -> Tensor:
    """How often each pixel is non-zero (its channel sum > 0) over the images of ``batches``
    (image tensors or loader batches), ``[H * W]``: the official pixel weights of CDEP's
    single-pixel prior.

    Example:
        >>> x = torch.zeros(4, 3, 2, 2)
        >>> x[:2, 0, 0, 0] = 1
        >>> nonzero_frequency([x]).tolist()
        [0.5, 0.0, 0.0, 0.0]
    """
    counts: Tensor | None = None
    images = 0
    for batch in batches:
        x = batch if isinstance(batch, Tensor) else unpack_batch(batch).images
        check_images(x, finite=False)
        nonzero = (x.sum(dim=1) > 0).flatten(1).sum(dim=0)
        counts = nonzero if counts is None else counts + nonzero
        images += x.shape[0]
    if counts is None:
        raise ValueError("nonzero_frequency needs at least one batch of images, got none")
    return counts.float() / images
