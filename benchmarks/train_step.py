"""Training-step time of the explanation-driven methods against their baselines, side by side.

ExCon vs SupCon (ContrastiveModel around a CIFAR ResNet-18) and EDDA vs RandomOcclusionControl (CIFAR
ResNet-18 classifier): the same model width, batch, images and device, one full optimisation
step each (views, explanations, forward, backward, SGD update), timed in interleaved rounds so
machine load affects every method alike; the median step time per method is reported. ExCon is
timed with and without background negatives, since their number (masked images the probe no
longer classifies) depends on the model: an untrained model loses most of them, which is the
worst case. Targets: ExCon/SupCon <= 1.3, EDDA/RandomOcclusionControl <= 1.15.

Run: ``python benchmarks/train_step.py --device cpu --batch-size 64 --width 16`` (CPU) or
``python benchmarks/train_step.py --device cuda --batch-size 256 --width 64`` (GPU, bf16).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from explainaug.models import ContrastiveModel, resnet18
from explainaug.train import EDDA, ExCon, RandomOcclusionControl, SupCon
from explainaug.train.methods.base import Method

CIFAR_MEAN, CIFAR_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def make_model(contrastive: bool, width: int, num_classes: int, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    if contrastive:
        encoder = resnet18(None, width=width, mean=CIFAR_MEAN, std=CIFAR_STD)
        model: nn.Module = ContrastiveModel(encoder, encoder.num_features, num_classes=num_classes)
    else:
        model = resnet18(num_classes, width=width, mean=CIFAR_MEAN, std=CIFAR_STD)
    return model.to(device).train()


def step_function(
    method: Method, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device
) -> tuple[Callable[[], None], dict[str, float]]:
    method.setup(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda"
        else contextlib.nullcontext()
    )
    last: dict[str, float] = {}

    def step() -> None:
        with autocast:
            loss, metrics = method.training_step(model, batch, epoch=0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if "masked_kept" in metrics:
            last["masked_kept"] = float(metrics["masked_kept"])

    return step, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per method")
    args = parser.parse_args()
    device = torch.device(args.device)

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=generator)
    y = torch.randint(0, args.num_classes, (args.batch_size,), generator=generator)
    batch = (x.to(device), y.to(device))

    specs = {
        "SupCon": (True, lambda: SupCon()),
        "ExCon": (True, lambda: ExCon(explain_warmup_epochs=0)),
        "ExCon, no background negatives": (
            True,
            lambda: ExCon(explain_warmup_epochs=0, negative_pair=False),
        ),
        "RandomOcclusionControl": (False, lambda: RandomOcclusionControl()),
        "EDDA": (False, lambda: EDDA()),
    }
    steps, extras = {}, {}
    contrastive_specs = {name: contrastive for name, (contrastive, _) in specs.items()}
    for name, (contrastive, build) in specs.items():
        model = make_model(contrastive, args.width, args.num_classes, device)
        steps[name], extras[name] = step_function(build(), model, batch, device)
        for _ in range(args.warmup):
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in specs}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {device} ({name}), "
        f"torch {torch.__version__}, ResNet-18 width {args.width}, batch {args.batch_size}, "
        f"{args.image_size}x{args.image_size}, {args.num_classes} classes, median of {args.rounds}"
    )
    print("| method | step (ms) | ratio to baseline | masked views kept |")
    print("|---|---:|---:|---:|")
    for name in specs:
        baseline = "SupCon" if contrastive_specs[name] else "RandomOcclusionControl"
        ratio = median[name] / median[baseline]
        kept = extras[name].get("masked_kept")
        kept_text = "" if kept is None else f"{kept:.2f}"
        print(f"| {name} | {1000 * median[name]:.1f} | {ratio:.2f} (vs {baseline}) | {kept_text} |")


if __name__ == "__main__":
    main()
