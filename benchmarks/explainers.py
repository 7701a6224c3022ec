"""Speed of explainaug's explainers against Captum and pytorch-grad-cam, side by side.

One run, one device, one model: the CIFAR ResNet-18 of ``explainaug.models`` (width 64 unless
``--width``, 100 classes, random weights, eval mode) on a batch of random 32x32 images. Every method is warmed up
once, then the calls of a comparison are interleaved ``--repeats`` times (so load drift on a
shared machine hits both sides alike) and the median is reported.

Usage:
    python benchmarks/explainers.py [--device cuda] [--batch-size 64] [--repeats 5] [--quick]
        [--methods gradcam ig gbp smoothgrad scorecam rise occlusion]

``--quick`` cuts IG steps and SmoothGrad samples from 50 to 8 and RISE masks from 4000 to 500
(for CPU runs); both sides always get the same settings. Score-CAM runs at batch 16 (its cost is
16 x 512 masked images); RISE at ``--rise-batch-size`` images against a loop over the same masks,
one forward per mask; Occlusion with an 8x8 window and stride 4 (49 windows per image). ``--clock cpu`` (CPU devices only) measures the CPU time this
process uses instead of wall time: on a machine shared with other jobs, wall time mostly measures
their load.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
from captum.attr import Occlusion as CaptumOcclusion
from captum.attr import Saliency as CaptumSaliency
from pytorch_grad_cam import GradCAM as PytorchGradCAM
from pytorch_grad_cam import ScoreCAM as PytorchScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from explainaug.explain import (
    RISE,
    GradCAM,
    GuidedBackprop,
    IntegratedGradients,
    Occlusion,
    Saliency,
    ScoreCAM,
    SmoothGrad,
)
from explainaug.models import resnet18

Call = Callable[[], object]
METHODS = ("gradcam", "ig", "gbp", "smoothgrad", "scorecam", "rise", "occlusion")


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
    parser.add_argument(
        "--quick", action="store_true", help="8 IG steps / SmoothGrad samples, 500 RISE masks"
    )
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--rise-batch-size", type=int, default=16)
    parser.add_argument("--width", type=int, default=64, help="ResNet-18 channels in stage 1")
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


Row = tuple[str, str, list[float], str]


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore", module="captum")  # "setting backward hooks" on every call
    device = torch.device(args.device)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    steps = 8 if args.quick else 50
    torch.manual_seed(0)
    model = resnet18(num_classes=100, width=args.width).to(device).eval()
    x = torch.rand(args.batch_size, 3, 32, 32, device=device)
    y = torch.randint(0, 100, (args.batch_size,), device=device)
    # Captum chunks IG by whole steps (internal_batch_size // B of them) and NoiseTunnel by
    # samples per image; use a multiple of the batch so both libraries run the same passes.
    per_pass = max(args.internal_batch_size // args.batch_size, 1) * args.batch_size

    def timed(calls: list[Call]) -> list[float]:
        return median_times(calls, args.repeats, device, clock)

    rows: list[Row] = []
    if "gradcam" in args.methods:
        ours_gradcam = GradCAM(model, "layer4")
        captum_gradcam = LayerGradCam(model, model.layer4)
        targets = [ClassifierOutputTarget(int(c)) for c in y]
        size = tuple(x.shape[-2:])
        with PytorchGradCAM(model=model, target_layers=[model.layer4]) as peer_gradcam:
            times = timed(
                [
                    lambda: ours_gradcam(x, y),
                    lambda: LayerAttribution.interpolate(
                        captum_gradcam.attribute(x, target=y, relu_attributions=True),
                        size,
                        "bilinear",
                    ),
                    lambda: peer_gradcam(input_tensor=x, targets=targets),
                ]
            )
        method = "Grad-CAM (map at input size)"
        rows.append((method, "Captum LayerGradCam+interpolate", times[:2], "-"))
        rows.append((method, "pytorch-grad-cam GradCAM", [times[0], times[2]], ">= 3x"))
    if "ig" in args.methods:
        ours_ig = IntegratedGradients(model, n_steps=steps, internal_batch_size=per_pass)
        captum_ig = CaptumIntegratedGradients(model)
        times = timed(
            [
                lambda: ours_ig.attribute(x, y),
                lambda: captum_ig.attribute(
                    x, target=y, n_steps=steps, internal_batch_size=per_pass
                ),
            ]
        )
        rows.append(
            (f"Integrated Gradients, {steps} steps", "Captum IntegratedGradients", times, ">= 1.2x")
        )
    if "gbp" in args.methods:
        ours_gbp = GuidedBackprop(model)
        captum_gbp = CaptumGuidedBackprop(model)
        times = timed([lambda: ours_gbp.attribute(x, y), lambda: captum_gbp.attribute(x, target=y)])
        rows.append(("Guided Backprop", "Captum GuidedBackprop", times, ">= 1x"))
    if "smoothgrad" in args.methods:
        ours_smooth = SmoothGrad(
            Saliency(model), nt_samples=steps, stdev_spread=0.15, internal_batch_size=per_pass
        )
        captum_smooth = NoiseTunnel(CaptumSaliency(model))
        times = timed(
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
            ]
        )
        rows.append(
            (f"SmoothGrad, {steps} samples", "Captum NoiseTunnel(Saliency)", times, ">= 1x")
        )
    if "scorecam" in args.methods:
        rows.append(scorecam_row(model, x[:16], y[:16], args.internal_batch_size, timed))
    if "rise" in args.methods:
        n_masks = 500 if args.quick else 4000
        batch = args.rise_batch_size
        rows.append(rise_row(model, x[:batch], y[:batch], n_masks, args.internal_batch_size, timed))
    if "occlusion" in args.methods:
        ours_occlusion = Occlusion(model, window=8, stride=4, internal_batch_size=per_pass)
        captum_occlusion = CaptumOcclusion(model)
        times = timed(
            [
                lambda: ours_occlusion.attribute(x, y),
                lambda: captum_occlusion.attribute(
                    x,
                    sliding_window_shapes=(3, 8, 8),
                    strides=(3, 4, 4),
                    target=y,
                    perturbations_per_eval=per_pass // args.batch_size,
                ),
            ]
        )
        rows.append(("Occlusion 8x8, stride 4", "Captum Occlusion", times, "-"))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device {device} ({name or platform.machine()}, {torch.get_num_threads()} threads), "
        f"torch {torch.__version__}, captum {captum.__version__}, "
        f"grad-cam {getattr(pytorch_grad_cam, '__version__', 'installed')}; ResNet-18 w{args.width}, "
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


def scorecam_row(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    per_pass: int,
    timed: Callable[[list[Call]], list[float]],
) -> Row:
    """pytorch-grad-cam's Score-CAM variant, ours (all pairs in chunks) vs theirs (per image).

    Both score ``per_pass`` masked images per forward pass (their ``batch_size``); their
    progress bars are silenced.
    """
    ours = ScoreCAM(model, "layer4", variant="pytorch-grad-cam", internal_batch_size=per_pass)
    targets = [ClassifierOutputTarget(int(c)) for c in y]
    with PytorchScoreCAM(model=model, target_layers=[model.layer4]) as peer:
        peer.batch_size = per_pass

        def theirs() -> object:
            with contextlib.redirect_stderr(io.StringIO()):
                return peer(input_tensor=x, targets=targets)

        times = timed([lambda: ours(x, y), theirs])
    return (
        f"Score-CAM (pytorch-grad-cam variant), batch {x.shape[0]}",
        "pytorch-grad-cam ScoreCAM",
        times,
        ">= 3x",
    )


def rise_row(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    n_masks: int,
    per_pass: int,
    timed: Callable[[list[Call]], list[float]],
) -> Row:
    """RISE (masks made on the fly, chunked) vs a loop with one forward per precomputed mask."""
    ours = RISE(model, n_masks=n_masks, seed=0, internal_batch_size=per_pass)
    masks = ours.masks(tuple(x.shape[-2:]), x.device, x.dtype)

    @torch.no_grad()
    def loop() -> torch.Tensor:
        saliency = torch.zeros_like(x[:, :1])
        for mask in masks:
            scores = model(x * mask).softmax(dim=1).gather(1, y[:, None])
            saliency += scores[:, :, None, None] * mask
        return saliency / (n_masks * ours.p)

    times = timed([lambda: ours(x, y), loop])
    return (f"RISE, {n_masks} masks, batch {x.shape[0]}", "per-mask loop", times, "-")


if __name__ == "__main__":
    main()
