"""One process of ``torchrun --nproc_per_node=2 tests/distributed_worker.py OUT`` (gloo, CPU).

Each process writes what it computed to ``OUT/rank{r}.pt``; ``tests/test_distributed.py``
compares that with one process on all rows / the whole global batch. The models have no
BatchNorm: with BatchNorm each process normalises with the statistics of its own share, which
legitimately differ from those of the global batch (the point here is gathering and gradient
synchronisation).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor, nn

from explainaug.augment import SaliencyMask, SaliencyOcclusion, supcon_views
from explainaug.data import DeviceLoader
from explainaug.distributed import per_process_batch_size, setup_distributed
from explainaug.explain import GradCAM
from explainaug.losses import ExConLoss, SupConLoss
from explainaug.models import ContrastiveModel
from explainaug.train import EDDA, CrossEntropy, ExCon, Method, SupCon, Trainer

WORLD = 2
KINDS = ("ce", "supcon", "excon", "edda")
# Loss check: 12 feature rows split 5 / 7 over the processes; background rows 1 / 3.
ROW_SIZES = (5, 7)
BACKGROUND = torch.tensor([0, 0, 1, 0, 0] + [1, 0, 1, 0, 1, 0, 0], dtype=torch.bool)
# Training check: global batches of 8, process r takes images r, r + 2, ...; with the probe
# rigged to predict class 0, ExCon's background images (label != 0) are 1 on rank 0, 4 on rank 1.
LABELS = torch.tensor([0, 1, 0, 2, 0, 1, 1, 2])
STEPS = 2


def loss_rows() -> tuple[Tensor, Tensor]:
    """Feature rows [12, 6] (float64) and their labels."""
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(12, 6, dtype=torch.float64, generator=generator)
    return features, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3, 0])


def encoder() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
    )


def flip_views(x: Tensor) -> Tensor:
    return torch.stack([x, x.flip(3)], dim=1)


def build(kind: str, views: object = flip_views) -> tuple[nn.Module, Method]:
    """A seeded model and its method; ``views`` replaces the deterministic flip views."""
    torch.manual_seed(0)
    if kind in ("ce", "edda"):
        model = nn.Sequential(encoder(), nn.Linear(16, 3))
        if kind == "ce":
            return model, CrossEntropy()
        # threshold mode: the ratio mode breaks ties among equal saliency with a random draw,
        # which differs between N processes' generators and one process's, as random views do
        occlusions = {
            region: SaliencyOcclusion(region, threshold=0.5, fill=0.5, check_values=False)
            for region in ("salient", "nonsalient")
        }
        explainer = GradCAM(model, layer="0.0", check_values=False)
        return model, EDDA(explainer=explainer, **occlusions)
    model = ContrastiveModel(encoder(), 16, proj_dim=4, num_classes=3)
    if kind == "supcon":
        return model, SupCon(temperature=0.5, views=views)
    with torch.no_grad():  # the probe predicts class 0 everywhere (at first)
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    return model, ExCon(
        explainer=GradCAM(model, layer="encoder.0", relu=False, check_values=False),
        mask=SaliencyMask(threshold=0.5, fill=0.5, check_values=False),
        explain_warmup_epochs=0,
        temperature=0.5,
        views=views,
    )


def batches() -> list[tuple[Tensor, Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [(torch.rand(8, 3, 8, 8, generator=generator), LABELS) for _ in range(STEPS)]


def shard(data: list[tuple[Tensor, Tensor]], rank: int) -> list[tuple[Tensor, Tensor]]:
    return [(x[rank::WORLD], y[rank::WORLD]) for x, y in data]


def fit(kind: str, data: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """Train ``kind`` over ``data`` (one epoch) and return the final weights."""
    model, method = build(kind)
    Trainer(
        model, method, epochs=1, lr=0.1, weight_decay=1e-3, device="cpu", progress=False, amp=None
    ).fit(data)
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


class StopAfter:
    """A loader that asks ``trainer`` to stop once ``steps`` batches were handed out."""

    def __init__(self, loader: DeviceLoader, steps: int) -> None:
        self.loader, self.steps, self.trainer = loader, steps, None

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self):
        for batch in self.loader:
            self.steps -= 1
            if self.steps == 0:
                self.trainer.request_stop()
            yield batch


def resumable_run(
    out_dir: Path, stop_after: int | None = None
) -> tuple[dict[str, Tensor], list[dict]]:
    """ExCon with random views (the RNG matters) for 2 epochs of 3 steps over 24 images: the
    trained weights and the epoch records."""
    with torch.random.fork_rng():  # building seeds the RNG; a resumed run must not need that
        model, method = build("excon", views=supcon_views(8))
    generator = torch.Generator().manual_seed(2)
    images = torch.randint(0, 256, (24, 3, 8, 8), dtype=torch.uint8, generator=generator)
    loader = DeviceLoader(
        (images, torch.arange(24) % 3),
        per_process_batch_size(8, WORLD),
        drop_last=True,
        device="cpu",
    )
    trainer = Trainer(
        model,
        method,
        epochs=2,
        lr=0.1,
        out_dir=out_dir,
        resume="auto",
        log_every=1,
        device="cpu",
        progress=False,
        amp=None,
    )
    if stop_after is not None:
        loader = StopAfter(loader, stop_after)
        loader.trainer = trainer
    history = trainer.fit(loader)
    assert trainer.interrupted == (stop_after is not None)
    return {key: value.detach().clone() for key, value in model.state_dict().items()}, history


def main(out: Path) -> None:
    torch.set_num_threads(1)
    rank = setup_distributed("cpu").rank
    results: dict[str, object] = {}

    features, labels = loss_rows()
    start, stop = sum(ROW_SIZES[:rank]), sum(ROW_SIZES[: rank + 1])
    for name, loss_fn, extra in (
        ("supcon_loss", SupConLoss(0.5, 0.07, gather_distributed=True), ()),
        ("excon_loss", ExConLoss(0.5, 0.07, gather_distributed=True), (BACKGROUND[start:stop],)),
    ):
        local = features[start:stop].clone().requires_grad_()
        loss = loss_fn(local, labels[start:stop], *extra)
        loss.backward()
        results[name] = (loss.detach(), local.grad)

    model, method = build("excon")
    method.setup(model)
    x, y = shard(batches(), rank)[0]
    results["excon_background_rows"] = int((~method.masked_views(model, x, y)[1]).sum())
    for kind in KINDS:
        results[kind] = fit(kind, shard(batches(), rank))

    results["uninterrupted"], results["uninterrupted_history"] = resumable_run(
        out / "uninterrupted"
    )
    resumed = out / "resumed"
    resumable_run(resumed, stop_after=4)  # in the second epoch
    torch.manual_seed(1234)  # as a fresh process: only the checkpoint holds the RNG states
    results["resumed"], results["resumed_history"] = resumable_run(resumed)
    torch.save(results, out / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
