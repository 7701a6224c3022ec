"""Runs over several processes (``torchrun``): the process group, and gathering rows across it.

One code path serves 1 and N processes: outside a process group (or with one process) every
helper here returns its input or the single-process answer, and no collective runs.

Gathering handles uneven row counts (ExCon's background rows vary per process): the counts are
exchanged on the host (no device sync; a gloo group beside NCCL), each process pads its rows to
the longest, all-gathers, and drops the padding, so the result holds exactly every process's
rows in rank order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

_HOST_GROUPS: dict[int, Any] = {}


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the run; ``local_rank`` (rank on this machine) selects the GPU."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0, which logs, shows progress and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def setup_distributed(device: str | torch.device | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` describes (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``), or describe a single-process run when those are absent.

    The backend is NCCL on CUDA and gloo on CPU. An already initialised group is reused.
    Without an explicit ``device``, each process takes ``cuda:LOCAL_RANK`` when CUDA is
    available, else the CPU.

    Example:
        >>> setup_distributed("cpu")
        DistributedContext(rank=0, world_size=1, local_rank=0, device=device(type='cpu'))
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, device)
    return DistributedContext(0, 1, 0, device)


def is_distributed() -> bool:
    """True when a torch.distributed process group with more than one process is running.

    Example:
        >>> is_distributed()
        False
    """
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 outside a process group).

    Example:
        >>> world_size()
        1
    """
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's rank (0 outside a process group): rank 0 alone prints and writes.

    Example:
        >>> rank()
        0
    """
    return dist.get_rank() if is_distributed() else 0


def launch_rank() -> int:
    """The rank ``torchrun`` gave this process (``RANK``; 0 without torchrun), known before the
    process group is joined.

    Example:
        >>> launch_rank()
        0
    """
    return int(os.environ.get("RANK", "0"))


def per_process_batch_size(batch_size: int, processes: int) -> int:
    """The images each of ``processes`` processes takes from a global batch (which must split
    evenly).

    Example:
        >>> per_process_batch_size(256, 4)
        64
    """
    if batch_size % processes:
        raise ValueError(
            f"batch_size is the global batch, split evenly over the {processes} processes; "
            f"expected a multiple of {processes}, got {batch_size}"
        )
    return batch_size // processes


def gather_objects(value: Any, context: DistributedContext) -> list[Any]:
    """Collect one picklable value per process, in rank order, on every process.

    Example:
        >>> gather_objects({"a": 1}, setup_distributed("cpu"))
        [{'a': 1}]
    """
    if not context.distributed:
        return [value]
    values: list[Any] = [None] * context.world_size
    dist.all_gather_object(values, value)
    return values


def _host_group() -> Any:
    """A group that exchanges CPU tensors: the default one when it runs gloo, else a gloo group
    beside it (created once per default group, by every process at the same call)."""
    if "gloo" in str(dist.get_backend()):
        return None
    key = id(dist.group.WORLD)
    if key not in _HOST_GROUPS:
        _HOST_GROUPS[key] = dist.new_group(backend="gloo")
    return _HOST_GROUPS[key]


def gather_sizes(tensor: Tensor) -> list[int]:
    """Every process's row count (``tensor.shape[0]``), in rank order, exchanged on the host;
    raises ``ValueError`` on every process when their rows differ in shape beyond dim 0.

    Example:
        >>> gather_sizes(torch.zeros(3, 2))
        [3]
    """
    if not is_distributed():
        return [tensor.shape[0]]
    if not 1 <= tensor.ndim <= 8:
        raise ValueError(f"can gather rows of tensors of 1 to 8 dims, got {tensor.ndim}")
    local = torch.tensor(list(tensor.shape) + [-1] * (8 - tensor.ndim), dtype=torch.long)
    shapes = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(shapes, local, group=_host_group())
    if any(not torch.equal(shape[1:], shapes[0][1:]) for shape in shapes):
        trailing = [tuple(v for v in shape[1:].tolist() if v >= 0) for shape in shapes]
        raise ValueError(
            f"every process must gather rows of one shape; got row shapes {trailing} by rank"
        )
    return [int(shape[0]) for shape in shapes]


def _all_gather_rows(tensor: Tensor, sizes: Sequence[int]) -> Tensor:
    longest = max(sizes)
    padded = tensor.contiguous()
    if tensor.shape[0] < longest:
        padded = torch.cat(
            [padded, padded.new_zeros((longest - tensor.shape[0], *tensor.shape[1:]))]
        )
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


class _GatherWithGrad(torch.autograd.Function):
    """Row gather forward; backward sums the gradient over processes and keeps the local rows."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, sizes: Sequence[int]) -> Tensor:  # type: ignore[override]
        index = dist.get_rank()
        ctx.start, ctx.stop = sum(sizes[:index]), sum(sizes[: index + 1])
        return _all_gather_rows(tensor, sizes)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop], None


def gather_with_grad(tensor: Tensor, sizes: Sequence[int] | None = None) -> Tensor:
    """Concatenate the rows of ``tensor`` from all processes along dim 0 (rank order),
    differentiably; row counts may differ between processes.

    In the backward pass each process receives the sum over processes of the gradients with
    respect to its own rows, so a loss computed on the gathered rows trains every process's
    features. Outside a process group it returns ``tensor``. ``sizes``: every process's row
    count (``gather_sizes(tensor)``, which it calls when None).

    Example:
        >>> gather_with_grad(torch.ones(2, 3)).shape
        torch.Size([2, 3])
    """
    if not is_distributed():
        return tensor
    return _GatherWithGrad.apply(tensor, gather_sizes(tensor) if sizes is None else sizes)


def gather_no_grad(tensor: Tensor, sizes: Sequence[int] | None = None) -> Tensor:
    """Concatenate the rows of ``tensor`` (labels, flags) from all processes; no gradient.

    Example:
        >>> gather_no_grad(torch.tensor([1, 2])).tolist()
        [1, 2]
    """
    if not is_distributed():
        return tensor
    return _all_gather_rows(tensor.detach(), gather_sizes(tensor) if sizes is None else sizes)


def global_sum(value: Tensor) -> Tensor:
    """Sum ``value`` over all processes (no gradient); ``value`` itself outside a process group.

    Example:
        >>> global_sum(torch.tensor(3.0)).item()
        3.0
    """
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value
