"""DDP with two gloo processes on the CPU equals one process on the concatenated batch.

The models here have no BatchNorm: with BatchNorm each process normalises with the statistics
of its own half batch, which differ from those of the whole batch, so the two runs would
legitimately differ. (SyncBatchNorm would restore equality but needs a backend with its
collectives; the point here is the gradient synchronisation, not BN.)
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from explainaug.losses import SupConLoss
from explainaug.models import ContrastiveModel
from explainaug.train import CrossEntropy, SupCon, Trainer

BATCH, STEPS, WORLD = 8, 3, 2


def encoder() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )


def build(kind: str) -> tuple[nn.Module, object]:
    torch.manual_seed(0)
    if kind == "ce":
        return nn.Sequential(encoder(), nn.Linear(16, 3)), CrossEntropy()
    model = ContrastiveModel(encoder(), 16, proj_dim=4, num_classes=3)
    views = lambda x: torch.stack([x, x.flip(3)], dim=1)  # noqa: E731 (deterministic views)
    return model, SupCon(views=views, loss=SupConLoss(0.5, gather_distributed=True))


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (
            torch.rand(BATCH, 3, 8, 8, generator=generator),
            torch.randint(0, 3, (BATCH,), generator=generator),
        )
        for _ in range(STEPS)
    ]


def shard(data, rank: int, world: int):
    return [(x[rank::world], y[rank::world]) for x, y in data]


def fit(kind: str, data) -> dict[str, torch.Tensor]:
    model, method = build(kind)
    Trainer(
        model, method, epochs=1, lr=0.5, weight_decay=1e-3, device="cpu", progress=False, amp=None
    ).fit(data)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    results = {kind: fit(kind, shard(batches(), rank, WORLD)) for kind in ("ce", "supcon")}
    torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_process_on_the_whole_batch(tmp_path):
    mp.spawn(worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for kind in ("ce", "supcon"):
        single = fit(kind, batches())
        initial = build(kind)[0].state_dict()
        for key, value in single.items():
            assert not torch.equal(value, initial[key]) or "running" in key, key  # it trained
            for rank in ranks:
                torch.testing.assert_close(
                    rank[kind][key], value, rtol=1e-5, atol=1e-6, msg=f"{kind} {key}"
                )
