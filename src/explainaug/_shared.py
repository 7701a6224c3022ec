"""Helpers every layer shares: saliency-map resizing and scaling, pixel counts of a fraction,
and model-state guards.

Private to the package (explain, augment, evaluate and train import it; users import the public
names ``explainaug.explain.upsample`` and ``explainaug.explain.minmax_normalize``). It depends on
nothing but torch, so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug.typing import Batch


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resize maps ``[B, K, h, w]`` to ``size`` (no-op when it already matches).

    Example:
        >>> upsample(torch.ones(1, 1, 4, 4), (8, 8)).shape
        torch.Size([1, 1, 8, 8])
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def minmax_normalize(maps: Tensor, eps: float = 1e-12) -> Tensor:
    """Scale each map of ``[B, K, H, W]`` to [0, 1]; a constant map becomes all zeros.

    Example:
        >>> minmax_normalize(torch.tensor([[[[1.0, 3.0]]]])).tolist()
        [[[[0.0, 1.0]]]]
    """
    flat = maps.flatten(2)
    low = flat.amin(dim=2, keepdim=True)
    span = flat.amax(dim=2, keepdim=True) - low
    return ((flat - low) / span.clamp_min(eps)).view_as(maps)


def pixel_counts(
    ratio: Tensor | float, num_pixels: int, batch_size: int, device: torch.device | str
) -> Tensor:
    """``round(ratio * num_pixels)`` per image as ``LongTensor[batch_size]`` (half to even).

    Example:
        >>> pixel_counts(0.25, 10, 2, "cpu").tolist()
        [2, 2]
    """
    ratio = torch.as_tensor(ratio, dtype=torch.float64, device=device)
    return torch.round(ratio * num_pixels).long().expand(batch_size)


def image_step_chunks(
    n_images: int,
    n_steps: int,
    chunk_size: int | None,
    device: torch.device | str,
    *,
    step_major: bool = False,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Every (image, step) pair, ``chunk_size`` pairs at a time: ``(start, image, step)``.

    The loop of the batched explainers and metrics that expand each image into several inputs
    (IG's path points, SmoothGrad's noisy copies, faithfulness's perturbations): ``image`` and
    ``step`` are ``LongTensor`` indices of one chunk, image-major (all steps of image 0 first)
    or, with ``step_major``, step-major. ``chunk_size=None`` gives one chunk.

    Example:
        >>> [(start, image.tolist(), step.tolist()) for start, image, step
        ...  in image_step_chunks(2, 2, 3, "cpu")]
        [(0, [0, 0, 1], [0, 1, 0]), (3, [1], [1])]
    """
    total = n_images * n_steps
    chunk = total if chunk_size is None else chunk_size
    for start in range(0, total, chunk):
        flat = torch.arange(start, min(start + chunk, total), device=device)
        if step_major:
            yield start, flat % n_images, flat // n_images
        else:
            yield start, flat // n_steps, flat % n_steps


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block; restore each module's own mode on exit.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Dropout()).train()
        >>> with eval_mode(model):
        ...     model.training
        False
        >>> model.training
        True
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[None]:
    """Run a block without changing the model's modes or BatchNorm running statistics.

    Train-mode BatchNorm layers normalise with batch statistics as usual, but update private
    copies of their running buffers, so the model's own buffers are never written. Modes are
    restored on exit, also after an exception.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN().train()
        >>> before = model.block1[1].running_mean.clone()
        >>> with preserved_model_state(model):
        ...     _ = model(torch.randn(4, 3, 32, 32))
        >>> torch.equal(before, model.block1[1].running_mean)
        True
    """
    modes = [(module, module.training) for module in model.modules()]
    swapped: list[tuple[nn.Module, str, Tensor]] = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.training:
            for key in ("running_mean", "running_var", "num_batches_tracked"):
                buffer = module._buffers.get(key)
                if buffer is not None:
                    swapped.append((module, key, buffer))
                    module._buffers[key] = buffer.clone()
    try:
        yield
    finally:
        for module, key, buffer in swapped:
            module._buffers[key] = buffer
        for module, training in modes:
            module.training = training


def is_contrastive(model: nn.Module) -> bool:
    """Whether ``model`` is contrastive: it offers ``features``, ``project`` and ``classify`` (as
    ``explainaug.models.ContrastiveModel``).

    Example:
        >>> is_contrastive(torch.nn.Linear(2, 2))
        False
    """
    return all(callable(getattr(model, name, None)) for name in ("features", "project", "classify"))


def unpack_batch(batch: object) -> Batch:
    """A loader's batch ``(x, y)``, ``(x, y, masks)`` or ``(x, y, masks, cue_masks)`` as a
    :class:`~explainaug.typing.Batch`; shapes and dtypes checked (no host sync).

    Example:
        >>> batch = unpack_batch((torch.zeros(2, 3, 8, 8), torch.tensor([0, 1])))
        >>> batch.images.shape, batch.labels.tolist(), batch.masks
        (torch.Size([2, 3, 8, 8]), [0, 1], None)
    """
    expected = "a tuple (x, y), (x, y, masks) or (x, y, masks, cue_masks)"
    if not isinstance(batch, (tuple, list)):
        raise ValueError(f"a batch must be {expected}, got a {type(batch).__name__}")
    if len(batch) not in (2, 3, 4):
        raise ValueError(
            f"a batch must be {expected}, got a {type(batch).__name__} of length {len(batch)}"
        )
    x, y = batch[0], batch[1]
    if not isinstance(x, Tensor) or not x.is_floating_point():
        got = f"dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        raise TypeError(f"batch images must be a float tensor in [0, 1], got {got}")
    if x.ndim != 4:
        raise ValueError(f"batch images must have shape [B, C, H, W], got {tuple(x.shape)}")
    if not isinstance(y, Tensor) or y.is_floating_point() or y.dtype == torch.bool:
        got = f"dtype {y.dtype}" if isinstance(y, Tensor) else type(y).__name__
        raise TypeError(f"batch labels must be an integer tensor (torch.long), got {got}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"batch labels must have shape [{x.shape[0]}] to match the images, got {tuple(y.shape)}"
        )
    masks = [item for item in batch[2:]]
    for name, mask in zip(("masks", "cue_masks"), masks, strict=False):
        if mask is not None and (not isinstance(mask, Tensor) or mask.shape[0] != x.shape[0]):
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(
                f"batch {name} must be a tensor with batch size {x.shape[0]}, got {got}"
            )
    return Batch(x, y, *masks)
