"""Occlusion (Zeiler & Fergus, ECCV 2014) with Captum's sliding-window semantics.

A window of ``window = (h, w)`` pixels, over all channels, slides with ``stride = (sh, sw)``
from the top-left corner: ``ceil((H - h) / sh) + 1`` positions per column (the last window may
stop at the border, cut short), likewise per row. Each position replaces the window with the
baseline; a pixel's attribution is the mean, over the windows covering it, of
``f(x)[c] - f(x_occluded)[c]`` (logits).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from explainaug._shared import image_step_chunks
from explainaug._validation import check_count
from explainaug.explain._base import Explainer, class_scores


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """``value`` as ``(h, w)``; an int gives a square."""
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(pair, tuple) or len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair (h, w) of ints, got {value!r}")
    for item in pair:
        check_count(item, name)
    return pair


class Occlusion(Explainer):
    """Occlusion, equal to Captum's ``Occlusion.attribute`` with the window over all channels.

    All (image, window position) pairs are scored in chunks of ``internal_batch_size`` occluded
    images. ``attribute`` returns Captum's output ``[B, C, H, W]`` (the same value in every
    channel); ``__call__`` returns its positive part ``[B, 1, H, W]`` (pixels whose occlusion
    lowers the target's logit). The occluded images are scored without a graph:
    ``create_graph=True`` raises ``ValueError``.

    Args:
        window: window size ``(h, w)`` in pixels (an int for a square), at most the image's.
        stride: step ``(sh, sw)`` between windows, at most the window.
        baselines: the value occluded pixels take (Captum's ``baselines``; 0 by default).
        internal_batch_size: occluded images per forward pass.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> occlusion = Occlusion(SmallCNN(num_classes=3, width=4).eval(), window=4, stride=2)
        >>> occlusion.attribute(torch.rand(2, 3, 8, 8), target=0).shape
        torch.Size([2, 3, 8, 8])
    """

    needs_gradients = False  # forward passes only
    differentiable = False

    def __init__(
        self,
        model: nn.Module,
        *,
        window: int | tuple[int, int] = (8, 8),
        stride: int | tuple[int, int] = (4, 4),
        baselines: float = 0.0,
        internal_batch_size: int = 256,
        check_values: bool = True,
    ) -> None:
        super().__init__(model, check_values=check_values)
        self.window = _pair(window, "window")
        self.stride = _pair(stride, "stride")
        if any(s > w for s, w in zip(self.stride, self.window, strict=True)):
            raise ValueError(f"stride must not exceed the window {self.window}, got {self.stride}")
        if isinstance(baselines, bool) or not isinstance(baselines, (int, float)):
            raise TypeError(f"baselines must be a number, got {type(baselines).__name__}")
        check_count(internal_batch_size, "internal_batch_size")
        self.baselines = float(baselines)
        self.internal_batch_size = internal_batch_size

    def windows(self, size: tuple[int, int], device: torch.device) -> Tensor:
        """Bool ``[P, H, W]``: the pixels each window position covers, positions row-major.

        Example:
            >>> from explainaug.models import SmallCNN
            >>> Occlusion(SmallCNN(width=4), window=2, stride=2).windows((3, 4), "cpu").shape
            torch.Size([4, 3, 4])
        """
        axes = []
        for length, window, stride in zip(size, self.window, self.stride, strict=True):
            if window > length:
                raise ValueError(f"window {self.window} must fit in the image {tuple(size)}")
            starts = torch.arange(math.ceil((length - window) / stride) + 1, device=device)
            pixels = torch.arange(length, device=device)
            offset = pixels - starts[:, None] * stride
            axes.append((offset >= 0) & (offset < window))  # [positions, length]
        rows, cols = axes
        return (rows[:, None, :, None] & cols[None, :, None, :]).flatten(0, 1)

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        batch = x.shape[0]
        size = (x.shape[2], x.shape[3])
        with torch.no_grad():
            reference, target = self._scores(x, target)
            windows = self.windows(size, x.device)
            positions = windows.shape[0]
            drops = []
            chunks = image_step_chunks(batch, positions, self.internal_batch_size, x.device)
            for _, images, position in chunks:
                covered = windows[position].unsqueeze(1)
                occluded = torch.where(covered, self.baselines, x[images])
                scores, _ = class_scores(self.model(occluded), target[images])
                drops.append(reference[images] - scores)
            drop = torch.cat(drops).view(batch, positions)
            covering = windows.flatten(1).to(x.dtype)
            total = drop @ covering / covering.sum(dim=0)
        return total.view(batch, 1, *size).expand(x.shape).contiguous()

    def _to_maps(self, raw: Tensor, x: Tensor) -> Tensor:
        return raw[:, :1].clamp_min(0)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({type(self.model).__name__}, window={self.window}, "
            f"stride={self.stride})"
        )
