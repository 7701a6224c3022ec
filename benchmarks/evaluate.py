"""Speed of explainaug's explanation evaluators against Quantus, side by side in one run.

* Cascading model randomization: ``explainaug.evaluate.model_randomization`` (Spearman ABS only,
  as Quantus' default) vs ``quantus.MPRT`` (``layer_order="top_down"``, Spearman, abs and
  normalise on).
* Deletion curves: ``explainaug.evaluate.faithfulness`` (which also computes insertion, Average
  Drop/Increase and SD/NC) vs ``quantus.PixelFlipping`` with the same number of steps and a
  black (0) fill. Quantus broadcasts the map over the channels and flips ``features_in_step``
  channel values per step (``features_in_step`` must divide H*W), so with ``3 * H * W / steps``
  it removes the same fraction per step as we do, but splits some pixels across two steps
  (we remove whole pixels); the mean curves therefore agree only approximately.

Same model (the CIFAR ResNet-18 of ``explainaug.models``, random weights, eval mode), same
explainer (Saliency: |gradient of the predicted logit|; Quantus gets it through
``quantus.explain(method="Saliency")``, i.e. Captum), same images, same device.
Both sides compute the explanations themselves. The four runs are interleaved ``--repeats``
times (ours, Quantus, ours, ...) so load drift on a shared machine hits both sides alike; the
table gives the fastest run of each (the least disturbed) and the median. The number of
randomization steps differs by design: Quantus resets every module with ``reset_parameters``
separately (convolution and BatchNorm are two steps), explainaug resets a convolution together
with its BatchNorm; the table gives the time per step as well.

Usage:
    python benchmarks/evaluate.py [--device cpu] [--images 32] [--width 16] [--steps 96]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import quantus
import torch

from explainaug.evaluate import faithfulness, model_randomization
from explainaug.explain import Saliency
from explainaug.models import resnet18


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--width", type=int, default=16, help="ResNet-18 width (64 = paper)")
    parser.add_argument(
        "--steps",
        type=int,
        default=96,
        help="deletion steps; 3*1024/steps must divide 1024 (48, 96, 192)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def timed(call: Callable[[], object], device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = call()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = resnet18(num_classes=10, width=args.width).to(device).eval()
    x = torch.rand(args.images, 3, 32, 32, device=device)
    with torch.no_grad():
        y = model(x).argmax(dim=1)
    x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
    explain_kwargs = {"method": "Saliency", "device": str(device)}
    # warm-up both sides once (autograd, allocator, Quantus imports)
    Saliency(model)(x[:2], y[:2])
    quantus.explain(model, x_np[:2], y_np[:2], **explain_kwargs)

    pixels = 32 * 32
    mprt = quantus.MPRT(layer_order="top_down", disable_warnings=True)
    flipping = quantus.PixelFlipping(
        features_in_step=3 * pixels // args.steps, perturb_baseline=0.0, disable_warnings=True
    )
    runs = {
        "ours_rand": lambda: model_randomization(
            model, Saliency, x, y, similarity="spearman_abs", include_random_map=False
        ),
        "quantus_rand": lambda: mprt(
            model,
            x_np,
            y_np,
            explain_func=quantus.explain,
            explain_func_kwargs=explain_kwargs,
            device=str(device),
            batch_size=args.images,
        ),
        "ours_del": lambda: faithfulness(
            model, Saliency(model), [(x, y)], deletion_steps=args.steps, fill=0.0, batch_size=1024
        ),
        "quantus_del": lambda: flipping(
            model,
            x_np,
            y_np,
            explain_func=quantus.explain,
            explain_func_kwargs=explain_kwargs,
            device=str(device),
            batch_size=args.images,
            softmax=True,
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, object] = {}
    for _ in range(args.repeats):
        for name, run in runs.items():
            seconds, outputs[name] = timed(run, device)
            times[name].append(seconds)
    best = {name: min(values) for name, values in times.items()}
    median = {name: statistics.median(values) for name, values in times.items()}
    ours_rand, quantus_rand = outputs["ours_rand"], outputs["quantus_rand"]
    ours_steps, quantus_steps = len(ours_rand["steps"]), len(quantus_rand) - 1
    quantus_curve = np.mean(np.asarray(outputs["quantus_del"]), axis=0)
    ours_curve = np.asarray(outputs["ours_del"]["deletion_curve"][1:])

    print(
        f"device: {device} ({platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads), torch {torch.__version__}, "
        f"quantus {quantus.__version__}, numpy {np.__version__}"
    )
    print(
        f"model: CIFAR ResNet-18 width {args.width}, 10 classes, random weights; "
        f"{args.images} images 32x32; explainer Saliency"
    )
    print(
        "| evaluation | explainaug best (median), s | Quantus best (median), s | speed-up (best) |"
    )
    print("|---|---:|---:|---:|")
    rows = [
        (
            f"cascading randomization, whole run ({ours_steps} vs {quantus_steps} steps)",
            "ours_rand",
            "quantus_rand",
            1,
            1,
        ),
        (
            "cascading randomization, per step",
            "ours_rand",
            "quantus_rand",
            ours_steps,
            quantus_steps,
        ),
        (
            f"deletion curve, {args.steps} steps (ours also insertion, AD/IC, SD/NC)",
            "ours_del",
            "quantus_del",
            1,
            1,
        ),
    ]
    for label, ours, theirs, ours_n, theirs_n in rows:
        print(
            f"| {label} | {best[ours] / ours_n:.3f} ({median[ours] / ours_n:.3f}) | "
            f"{best[theirs] / theirs_n:.3f} ({median[theirs] / theirs_n:.3f}) | "
            f"{(best[theirs] / theirs_n) / (best[ours] / ours_n):.1f}x |"
        )
    final_ours = ours_rand["similarity"]["spearman_abs"]["mean"][-1]
    final_quantus = float(np.mean(list(quantus_rand.values())[-1]))
    print(
        f"fully randomized Spearman ABS: explainaug {final_ours:.3f}, Quantus {final_quantus:.3f}"
    )
    print(
        f"mean deletion curve max |difference| (ours vs Quantus): "
        f"{np.abs(ours_curve - quantus_curve).max():.2e}"
    )


if __name__ == "__main__":
    main()
