"""Process-group set-up for runs launched by ``torchrun`` (one code path for 1 and N processes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the run.

    Attributes:
        rank: global rank (0 in a single-process run).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the device this process trains on.
    """

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
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank if world_size > 1 else torch.cuda.current_device())
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, device)
    return DistributedContext(0, 1, 0, device)


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
