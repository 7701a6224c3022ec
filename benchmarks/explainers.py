"""Speed of explainaug's explainers against Captum and pytorch-grad-cam, side by side.

One run, one device, one model: the CIFAR ResNet-18 of ``explainaug.models`` (width 64, 100
classes, random weights, eval mode) on a batch of random 32x32 images. Every method is warmed up
once, then the calls of a comparison are interleaved ``--repeats`` times (so load drift on a
shared machine hits both sides alike) and the median is reported.

Usage:
    python benchmarks/explainers.py [--device cuda] [--batch-size 64] [--repeats 5] [--quick]

``--quick`` cuts IG steps and SmoothGrad samples from 50 to 8 (for CPU runs); both libraries
always get the same settings. ``--clock cpu`` (CPU devices only) measures the CPU time this
process uses instead of wall time: on a machine shared with other jobs, wall time mostly measures
their load.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import captum
import pytorch_grad_cam
import torch
from captum.attr import GuidedBackprop as CaptumGuidedBackprop
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from captum.attr import LayerAttribution, LayerGradCam, NoiseTunnel
from captum.attr import Saliency as CaptumSaliency
from pytorch_grad_cam import GradCAM as PytorchGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainaug.explain import GradCAM, GuidedBackprop, IntegratedGradients, Saliency, SmoothGrad
from explainaug.models import resnet18

Call = Callable[[], object]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--internal-batch-size",
        type=int,
        default=512,
        help="model inputs per pass for IG and SmoothGrad (both libraries)",
    )
    parser.add_argument("--quick", action="store_true", help="8 IG steps / SmoothGrad samples")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or this process's CPU time (CPU device only)",
    )
    args = parser.parse_args()
    if args.clock == "cpu" and not args.device.startswith("cpu"):
        parser.error("--clock cpu measures host CPU time; use it with --device cpu")
    return args


def elapsed(call: Call, device: torch.device, clock: Callable[[], float]) -> float:
    """Seconds one call takes on ``clock``, with the device synchronised on both ends."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


def median_times(
    calls: list[Call], repeats: int, device: torch.device, clock: Callable[[], float]
) -> list[float]:
    """Warm every call up once, then time them interleaved; median seconds per call."""
    for call in calls:
        call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for index, call in enumerate(calls):
            times[index].append(elapsed(call, device, clock))
    return [statistics.median(samples) for samples in times]


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore", module="captum")  # "setting backward hooks" on every call
    device = torch.device(args.device)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    steps = 8 if args.quick else 50
    torch.manual_seed(0)
    model = resnet18(num_classes=100, width=64).to(device).eval()
    x = torch.rand(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (args.batch_size,), device=device)
    size = tuple(x.shape[-2:])
    # Captum chunks IG by whole steps (internal_batch_size // B of them) and NoiseTunnel by
    # samples per image; use a multiple of the batch so both libraries run the same passes.
    per_pass = max(args.internal_batch_size // args.batch_size, 1) * args.batch_size

    ours_gradcam = GradCAM(model, "layer4")
    captum_gradcam = LayerGradCam(model, model.layer4)
    ours_ig = IntegratedGradients(model, n_steps=steps, internal_batch_size=per_pass)
    captum_ig = CaptumIntegratedGradients(model)
    ours_gbp = GuidedBackprop(model)
    captum_gbp = CaptumGuidedBackprop(model)
    ours_smooth = SmoothGrad(
        Saliency(model), nt_samples=steps, stdev_spread=0.15, internal_batch_size=per_pass
    )
    captum_smooth = NoiseTunnel(CaptumSaliency(model))
    targets = [ClassifierOutputTarget(int(c)) for c in y]

    rows: list[tuple[str, str, list[float], str]] = []
    with PytorchGradCAM(model=model, target_layers=[model.layer4]) as peer_gradcam:
        times = median_times(
            [
                lambda: ours_gradcam(x, y),
                lambda: LayerAttribution.interpolate(
                    captum_gradcam.attribute(x, target=y, relu_attributions=True), size, "bilinear"
                ),
                lambda: peer_gradcam(input_tensor=x, targets=targets),
            ],
            args.repeats,
            device,
            clock,
        )
    rows.append(("Grad-CAM (map at input size)", "Captum LayerGradCam+interpolate", times[:2], "-"))
    rows.append(
        ("Grad-CAM (map at input size)", "pytorch-grad-cam GradCAM", [times[0], times[2]], ">= 3x")
    )
    ig_times = median_times(
        [
            lambda: ours_ig.attribute(x, y),
            lambda: captum_ig.attribute(x, target=y, n_steps=steps, internal_batch_size=per_pass),
        ],
        args.repeats,
        device,
        clock,
    )
    rows.append(
        (f"Integrated Gradients, {steps} steps", "Captum IntegratedGradients", ig_times, ">= 1.2x")
    )
    gbp_times = median_times(
        [
            lambda: ours_gbp.attribute(x, y),
            lambda: captum_gbp.attribute(x, target=y),
        ],
        args.repeats,
        device,
        clock,
    )
    rows.append(("Guided Backprop", "Captum GuidedBackprop", gbp_times, ">= 1x"))
    smooth_times = median_times(
        [
            lambda: ours_smooth.attribute(x, y),
            lambda: captum_smooth.attribute(
                x,
                target=y,
                nt_type="smoothgrad",
                nt_samples=steps,
                nt_samples_batch_size=per_pass // args.batch_size,
                stdevs=0.15,
            ),
        ],
        args.repeats,
        device,
        clock,
    )
    rows.append(
        (f"SmoothGrad, {steps} samples", "Captum NoiseTunnel(Saliency)", smooth_times, ">= 1x")
    )

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device {device} ({name or platform.machine()}, {torch.get_num_threads()} threads), "
        f"torch {torch.__version__}, captum {captum.__version__}, "
        f"grad-cam {getattr(pytorch_grad_cam, '__version__', 'installed')}; ResNet-18 w64, "
        f"batch {args.batch_size}, 32x32, {per_pass} inputs per pass, "
        f"{args.clock} clock, median of {args.repeats} after warm-up\n"
    )
    print("| Method | Peer | explainaug (ms) | peer (ms) | speed-up | target |")
    print("|---|---|---:|---:|---:|---|")
    for method, peer, (ours, theirs), target in rows:
        print(
            f"| {method} | {peer} | {ours * 1e3:.1f} | {theirs * 1e3:.1f} | "
            f"{theirs / ours:.2f}x | {target} |"
        )


if __name__ == "__main__":
    main()
