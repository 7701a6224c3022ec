"""Gathering tensors from every process with gradients flowing back to the local part."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """True when a torch.distributed process group with more than one process is running.

    Example:
        >>> is_distributed()
        False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward sums the gradient from every rank and keeps the local slice."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        ctx.rank, ctx.world_size = dist.get_rank(), dist.get_world_size()
        parts = [torch.empty_like(tensor) for _ in range(ctx.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad.chunk(ctx.world_size)[ctx.rank]


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0 (rank order), differentiably.

    Every rank must pass the same shape. Outside a process group it returns ``tensor``.
    In the backward pass each rank receives the sum over ranks of the gradients with respect to
    its own slice, so a loss computed on the gathered tensor trains every rank's features.

    Example:
        >>> gather_with_grad(torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor)


def gather_no_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` (labels, flags) from all ranks along dim 0; no gradient.

    Example:
        >>> gather_no_grad(torch.tensor([1, 2])).tolist()
        [1, 2]
    """
    if not is_distributed():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def rank_offset(local_rows: int) -> int:
    """Index of this rank's first row in a gathered tensor of equal-size parts.

    Example:
        >>> rank_offset(8)
        0
    """
    return dist.get_rank() * local_rows if is_distributed() else 0


def global_sum(value: Tensor) -> Tensor:
    """Sum ``value`` over all ranks (no gradient); ``value`` itself outside a process group.

    Example:
        >>> global_sum(torch.tensor(3.0)).item()
        3.0
    """
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def world_size() -> int:
    """Number of processes (1 outside a process group).

    Example:
        >>> world_size()
        1
    """
    return dist.get_world_size() if is_distributed() else 1
