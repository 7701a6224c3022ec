"""Training-step time of the explanation-driven methods against their baselines, side by side.

ExCon vs SupCon (ContrastiveModel around a CIFAR ResNet-18) and EDDA vs RandomOcclusionControl (CIFAR
ResNet-18 classifier): the same model width, batch, images and device, one full optimisation
step each (views, explanations, forward, backward, SGD update), timed in interleaved rounds so
machine load affects every method alike; the median step time per method is reported. ExCon is
timed with and without background negatives, since their number (masked images the probe no
longer classifies) depends on the model: an untrained model loses most of them, which is the
worst case. Targets: ExCon/SupCon <= 1.3, EDDA/RandomOcclusionControl <= 1.15.

The right-for-the-right-reasons suite (``--suite rrr``) times RRR, SGT, RRR-G and HINT (first
and second order) and CDEP (cue mask; single pixels: 1 per image, 8 per batch as the official) against a cross-entropy step on the demo's SmallCNN and cued shapes, and
against each method's compute floor: the forward (F) and backward (B) passes it cannot avoid,
timed on the same model and batch (RRR: F + 2B, the second backward running through the first;
SGT: 3F + 2B: its saliency pass's forward, the clean and masked forwards and their backwards,
the saliency pass's input-only backward counted as free; Grad-CAM penalties: F + B, in both
orders: above a CAM layer followed by pooling and a linear head the channel weights' own
derivative is a constant, so the second order adds almost nothing there; CDEP: per penalised
region 2F + 2B for the relevant and irrelevant streams, beside the training forward's F + B).

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

from explainaug.data import DeviceLoader, shapes
from explainaug.models import ContrastiveModel, SmallCNN, resnet18
from explainaug.train import (
    CDEP,
    EDDA,
    HINT,
    RRR,
    CrossEntropy,
    ExCon,
    RandomOcclusionControl,
    RRRGradCAM,
    SaliencyGuidedTraining,
    SupCon,
)
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


def interleaved(steps: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """Median time of each step over ``rounds`` interleaved rounds (load hits all alike)."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


# (forward passes, backward passes) a method cannot avoid; a double backward counts as two
FLOORS = {
    "CE": (1, 1),
    "RRR": (1, 2),
    "SGT": (3, 2),
    "RRR-G": (1, 1),
    "RRR-G, second order": (1, 1),
    "HINT": (1, 1),
    "HINT, second order": (1, 1),
    # CDEP: the training forward, then per region the relevant and irrelevant streams (two
    # forwards' worth of layers each region) and the backward through all of them
    "CDEP, cue mask": (3, 3),
    "CDEP, 1 pixel per image": (3, 3),
    "CDEP, 8 pixels per batch (official)": (17, 17),
}


def rrr_suite(args: argparse.Namespace, device: torch.device) -> None:
    """RRR, SGT, RRR-G and HINT steps vs a CE step and vs their compute floors (SmallCNN)."""
    data = shapes(n=args.batch_size, size=args.image_size, split="train", cue_correlation=0.95)
    batch = next(iter(DeviceLoader(data, args.batch_size, shuffle=False, device=device,
                                   cue_masks=True)))  # fmt: skip
    specs: dict[str, Callable[[], Method]] = {
        "CE": lambda: CrossEntropy(),
        "RRR": lambda: RRR(annotation="cue"),
        "SGT": lambda: SaliencyGuidedTraining(),
        "RRR-G": lambda: RRRGradCAM(annotation="cue", scale_penalty=False),
        "RRR-G, second order": lambda: RRRGradCAM(
            annotation="cue", scale_penalty=False, second_order=True
        ),
        "HINT": lambda: HINT(annotation="object", scale_penalty=False),
        "HINT, second order": lambda: HINT(
            annotation="object", scale_penalty=False, second_order=True
        ),
        "CDEP, cue mask": lambda: CDEP(annotation="cue"),
        "CDEP, 1 pixel per image": lambda: CDEP(annotation="pixels", pixels=1, pixel_draw="image"),
        "CDEP, 8 pixels per batch (official)": lambda: CDEP(annotation="pixels"),
    }

    def make() -> nn.Module:
        torch.manual_seed(0)
        return SmallCNN(4, width=args.width, mean=data.mean, std=data.std).to(device).train()

    steps = {}
    for name, build in specs.items():
        steps[name] = step_function(build(), make(), batch, device)[0]
        for _ in range(args.warmup):
            steps[name]()
    probe = make()
    x, y = batch[0], batch[1]
    holder: dict[str, torch.Tensor] = {}

    def forward() -> None:
        holder["loss"] = torch.nn.functional.cross_entropy(probe(x), y)
        synchronize(device)

    def backward() -> None:
        holder["loss"].backward()
        synchronize(device)

    steps["forward"], steps["backward"] = forward, backward  # timed in this order, interleaved
    for _ in range(args.warmup):
        forward()
        backward()
    step_time = interleaved(steps, args.rounds)
    f, b = step_time.pop("forward"), step_time.pop("backward")
    print(
        f"device {device} ({device_name(device)}), torch {torch.__version__}, SmallCNN width "
        f"{args.width}, batch {args.batch_size}, {args.image_size}x{args.image_size} cued shapes, "
        f"median of {args.rounds}; forward F = {1000 * f:.1f} ms, backward B = {1000 * b:.1f} ms"
    )
    print("| method | step (ms) | vs CE step | floor | floor (ms) | vs floor |")
    print("|---|---:|---:|---|---:|---:|")
    for name, seconds in step_time.items():
        forwards, backwards = FLOORS[name]
        floor = forwards * f + backwards * b
        print(
            f"| {name} | {1000 * seconds:.1f} | {seconds / step_time['CE']:.2f} | "
            f"{forwards}F + {backwards}B | {1000 * floor:.1f} | {seconds / floor:.2f} |"
        )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per method")
    parser.add_argument(
        "--suite",
        choices=("augmentation", "rrr", "all"),
        default="all",
        help="augmentation: ExCon/EDDA vs their baselines (ResNet-18); rrr: RRR, SGT, RRR-G, "
        "HINT, CDEP vs CE and their floors (SmallCNN)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.suite in ("rrr", "all"):
        rrr_suite(args, device)
    if args.suite == "rrr":
        return

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
    median = interleaved(steps, args.rounds)
    print(
        f"device {device} ({device_name(device)}), "
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
