"""Images/s of the ExCon masked-view pipeline on batches vs SupCon views from DataLoader workers.

Ours: ``supcon_views(32, n_views=2)`` plus ``SaliencyMask`` on whole batches on one device (the
training-step pattern). Peer: SupContrast's augmentation with torchvision transforms v2, two
views per image, in DataLoader workers (PIL images, as torchvision's CIFAR gives them, or uint8
tensors). The torchvision rows make the two SupCon views only (no saliency masking), so they do
less work than the first row. Images/s counts source images (each gives two views).

Run: ``python benchmarks/augment.py --device cpu --batches 4 --repeats 3``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from explainaug.augment import SaliencyMask, supcon_views


class TwoViews(Dataset):
    """CIFAR-like uint8 images, each returned as two torchvision-augmented views."""

    def __init__(self, images: np.ndarray, as_pil: bool) -> None:
        self.images = images
        self.as_pil = as_pil
        self.transform = v2.Compose(
            [
                v2.RandomResizedCrop(32, scale=(0.2, 1.0), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                v2.RandomGrayscale(p=0.2),
                v2.ToImage(),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        image = Image.fromarray(image) if self.as_pil else torch.from_numpy(image).permute(2, 0, 1)
        return torch.stack([self.transform(image), self.transform(image)])


def time_ours(
    batch_size: int, batches: int, device: torch.device, views: bool, mask: bool
) -> float:
    make_views = supcon_views(32, n_views=2).to(device)
    masking = SaliencyMask(threshold=0.5, fill="mean", mean=(0.5071, 0.4865, 0.4409)).to(device)
    x = torch.rand(batch_size, 3, 32, 32, device=device)
    maps = torch.rand(batch_size, 1, 8, 8, device=device)

    def step() -> None:
        with torch.no_grad():
            if views:
                make_views(x)
            if mask:
                masking(x, maps)
            if device.type == "cuda":
                torch.cuda.synchronize()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(batches):
        step()
    return batch_size * batches / (time.perf_counter() - start)


def time_torchvision(batch_size: int, batches: int, as_pil: bool, workers: int) -> float:
    images = np.random.default_rng(0).integers(
        0, 256, (batch_size * (batches + 2), 32, 32, 3), dtype=np.uint8
    )
    loader = DataLoader(
        TwoViews(images, as_pil),
        batch_size=batch_size,
        num_workers=workers,
        shuffle=True,
        drop_last=True,
    )
    iterator = iter(loader)
    next(iterator)  # warm-up: workers started, first batch made
    start = time.perf_counter()
    for _ in range(batches):
        views = next(iterator)
    assert views.shape == (batch_size, 2, 3, 32, 32)
    return batch_size * batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="rows report the best repeat")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    size, batches, workers = args.batch_size, args.batches, args.workers
    measurements = {
        f"explainaug supcon_views + SaliencyMask, batched on {device}": lambda: time_ours(
            size, batches, device, views=True, mask=True
        ),
        f"explainaug supcon_views only, batched on {device}": lambda: time_ours(
            size, batches, device, views=True, mask=False
        ),
        f"explainaug SaliencyMask only, batched on {device}": lambda: time_ours(
            size, batches, device, views=False, mask=True
        ),
        f"torchvision v2 SupCon views, PIL, {workers} workers": lambda: time_torchvision(
            size, batches, as_pil=True, workers=workers
        ),
        f"torchvision v2 SupCon views, uint8 tensor, {workers} workers": lambda: time_torchvision(
            size, batches, as_pil=False, workers=workers
        ),
    }
    rows = [
        (label, max(measure() for _ in range(args.repeats)))
        for label, measure in measurements.items()
    ]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name}, torch threads: {torch.get_num_threads()}, "
        f"batch {size} at 32x32, best of {args.repeats} x {batches} timed batches per row"
    )
    print("| pipeline | images/s |\n|---|---:|")
    for label, rate in rows:
        print(f"| {label} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
