"""``explainaug demo``: train every method on shipped data, evaluate them all, write a report.

The demo trains CrossEntropy, SupCon, ExCon, EDDA and random-occlusion (EDDA's control) models on
the synthetic ``shapes`` data (or scikit-learn's ``digits``), evaluates each (accuracy, calibration under the
15 corruptions, FGSM/PGD robustness, cascading randomization, faithfulness and, on shapes,
localization against the object masks) and writes ``report.md``, ``report.json`` and figures per
seed, plus ``summary.md`` / ``summary.json`` with the mean and spread over seeds. Whatever the
numbers show is reported as it is.

``--tables shortcut`` (``run_shortcut`` in Python) adds the shortcut testbed: every method trained on
``shapes`` whose class cue agrees with the label 95% of the time, then evaluated on cue-aligned
and cue-conflicting test images (accuracy, gap, share of Grad-CAM energy on cue and object), in
``shortcut/``. It trains every method again (as long as the main table), so it is off by
default.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explainaug.catalog import CONTRASTIVE_METHODS, METHODS, dataset_names
from explainaug.cli import DEVICE_HELP, HelpFormatter, plain_text
from explainaug.data import DeviceLoader
from explainaug.evaluate.compare import paired_table
from explainaug.evaluate.report import report
from explainaug.experiment import Experiment, load_shortcut_datasets, load_test_dataset, run

DEMO_EPS = (1 / 255, 2 / 255, 4 / 255)
DEMO_SEVERITIES = (1, 3, 5)

PathStep = str | int | Callable[[Any], Any]
Headlines = Sequence[tuple[str, tuple[PathStep, ...], bool]]

# (column label, path into one model's results (a callable transforms), higher is better?)
HEADLINES: Headlines = (
    ("accuracy", ("accuracy", "top1"), True),
    ("ECE", ("calibration", "clean", "ece"), False),
    ("accuracy (corrupted)", ("calibration", "mean", "accuracy"), True),
    ("ECE (corrupted)", ("calibration", "mean", "ece"), False),
    ("FGSM 2/255", ("robustness", "adversarial", "fgsm", str(DEMO_EPS[1])), True),
    ("PGD 2/255", ("robustness", "adversarial", "pgd", str(DEMO_EPS[1])), True),
    ("avg drop %", ("faithfulness", "average_drop_pct"), False),
    ("increase %", ("faithfulness", "increase_in_confidence_pct"), True),
    ("deletion AUC", ("faithfulness", "deletion_auc"), False),
    ("insertion AUC", ("faithfulness", "insertion_auc"), True),
    ("salient drop", ("faithfulness", "salient_drop"), True),
    ("non-salient change", ("faithfulness", "nonsalient_change"), False),
    ("EBPG", ("localization", "ebpg"), True),
    ("mIoU", ("localization", "miou"), True),
    ("pointing game", ("localization", "pointing_game"), True),
    # after the last randomization step: a rank correlation either way is dependence on the
    # trained weights, so its size counts (0 = the maps no longer follow the weights)
    (
        "randomized Spearman magnitude",
        ("randomization", "similarity", "spearman_abs", "mean", -1, abs),
        False,
    ),
)

# Paired comparisons the README's reading rests on: each method against its own control.
PAIRS: tuple[tuple[str, str], ...] = (
    ("excon", "supcon"),
    ("edda", "random-occlusion"),
    ("edda", "ce"),
    ("supcon", "ce"),
    ("excon", "ce"),
)

SHORTCUT_CUE_CORRELATION = 0.95  # training data of the shortcut table
SHORTCUT_HEADLINES: Headlines = (
    ("accuracy (aligned)", ("shortcut", "aligned", "accuracy"), True),
    ("accuracy (conflicting)", ("shortcut", "conflicting", "accuracy"), True),
    ("gap", ("shortcut", "gap"), False),
    ("cue share (aligned)", ("shortcut", "aligned", "cue_share"), False),
    ("cue share (conflicting)", ("shortcut", "conflicting", "cue_share"), False),
    ("object share (aligned)", ("shortcut", "aligned", "object_share"), True),
    ("object share (conflicting)", ("shortcut", "conflicting", "object_share"), True),
)
CONTRASTIVE_LR = 0.035  # = 0.05 / 1.43: the step size of lr 0.05 at loss scale 1 (see below)


def demo_experiment(
    method: str, dataset: str, seed: int, epochs: int, train_size: int = 2000
) -> Experiment:
    """The demo's settings for one method: a small CNN, warm-ups of a third of the epochs.

    Batch 64 and lr 0.05, or ``CONTRASTIVE_LR`` for SupCon/ExCon: their reference loss scale
    tau/0.07 multiplies the gradients by 1.43, and at lr 0.05 the contrastive loss stayed on its
    plateau (about log(2B - 1) x 1.43) through most epochs in 2 of 3 seeds (measured: SupCon
    0.70/0.89 and ExCon 0.59/0.50 accuracy at lr 0.05, 0.91/0.96 and 0.66/0.92 at 0.035, seeds
    1/2). The contrastive views crop at least 60% of the image (SupContrast's 20% often cuts the
    small shapes out of the view), and contrastive encoders get a final 10-epoch linear
    evaluation (SupCon's protocol), which replaces the linear head trained in the alternating
    epochs (ExCon's probe during training).

    Example:
        >>> demo_experiment("excon", "shapes", seed=0, epochs=12).explain_warmup_epochs
        4
        >>> demo_experiment("supcon", "shapes", seed=0, epochs=12).lr
        0.035
    """
    return Experiment(
        method=method,
        dataset=dataset,
        model="small-cnn",
        width=16,
        epochs=epochs,
        batch_size=64,
        lr=CONTRASTIVE_LR if method in CONTRASTIVE_METHODS else 0.05,
        view_min_scale=0.6,
        linear_epochs=10,
        linear_lr=1.0,
        explain_warmup_epochs=epochs // 3,
        seed=seed,
        train_size=train_size,
        image_size=32,
    ).validate()


def headline(results: Mapping, path: Sequence[PathStep]) -> float | None:
    """Follow ``path`` into nested results (a callable step transforms the value reached); None
    where a part is missing.

    Example:
        >>> headline({"a": {"b": [1.0, -2.0]}}, ("a", "b", -1)), headline({"a": -2}, ("a", abs))
        (-2.0, 2.0)
    """
    value: object = results
    for key in path:
        try:
            value = key(value) if callable(key) else value[key]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def summarize(
    per_seed: Sequence[Mapping[str, Mapping]], headlines: Headlines = HEADLINES
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and (population) standard deviation over seeds of every headline number.

    Example:
        >>> runs = [{"ce": {"accuracy": {"top1": 0.8}}}, {"ce": {"accuracy": {"top1": 0.6}}}]
        >>> summarize(runs)["ce"]["accuracy"]
        {'mean': 0.7, 'std': 0.1, 'seeds': 2}
    """
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for name in per_seed[0]:
        for label, path, _ in headlines:
            values = [v for results in per_seed if (v := headline(results[name], path)) is not None]
            if values:
                mean = sum(values) / len(values)
                std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
                summary.setdefault(name, {})[label] = {
                    "mean": round(mean, 6),
                    "std": round(std, 6),
                    "seeds": len(values),
                }
    return summary


def summary_markdown(
    summary: Mapping[str, Mapping[str, Mapping[str, float]]], headlines: Headlines = HEADLINES
) -> str:
    """The comparison table: one row per method, mean ± std over seeds, best value in bold.

    Example:
        >>> rows = {name: {"accuracy": {"mean": v, "std": 0.0, "seeds": 1}} for name, v in
        ...         [("ce", 0.9), ("edda", 0.8)]}
        >>> "| ce | **0.900** |" in summary_markdown(rows)
        True
    """
    labels = [
        label for label, _, _ in headlines if any(label in columns for columns in summary.values())
    ]
    better = {label: higher for label, _, higher in headlines}
    best = {}
    for label in labels:
        means = [cols[label]["mean"] for cols in summary.values() if label in cols]
        if len(set(means)) > 1:  # nothing is best where every method has the same value
            best[label] = max(means) if better[label] else min(means)
    lines = ["| method | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for name, columns in summary.items():
        cells = []
        for label in labels:
            if label not in columns:
                cells.append("n/a")
                continue
            mean, std, seeds = (columns[label][k] for k in ("mean", "std", "seeds"))
            text = f"{mean:.3f}" + (f" ± {std:.3f}" if seeds > 1 else "")
            cells.append(f"**{text}**" if mean == best.get(label) else text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    higher = ", ".join(label for label in labels if better[label])
    lower = ", ".join(label for label in labels if not better[label])
    lines += [
        "",
        f"Bold: the best mean; higher is better: {higher or '-'}; lower is better: {lower or '-'}.",
    ]
    return "\n".join(lines)


def comparison_markdown(
    per_seed: Sequence[Mapping[str, Mapping]], headlines: Headlines = HEADLINES
) -> str:
    """Paired differences over seeds for ``PAIRS`` and every headline number (95% t-interval).

    Example:
        >>> runs = [{"edda": {"accuracy": {"top1": 0.8}}, "ce": {"accuracy": {"top1": 0.9}}}] * 2
        >>> "| edda - ce | accuracy | -0.100 |" in comparison_markdown(runs)
        True
    """
    metrics = [
        (label, functools.partial(headline, path=path), higher) for label, path, higher in headlines
    ]
    return paired_table(per_seed, PAIRS, metrics)


def train_all(
    experiments: Mapping[str, Experiment],
    seed_dir: Path,
    device: str,
    progress: bool,
    log: Callable[[str], None],
    prefix: str,
) -> dict[str, nn.Module]:
    """Train each named experiment into ``seed_dir/runs/<name>`` (a rerun replaces the demo's own
    runs); return the trained models by name."""
    models = {}
    for name, experiment in experiments.items():
        log(
            f"{prefix} training {name} ({experiment.epochs} epochs on {experiment.dataset}, {device})"
        )
        result = run(
            experiment,
            out_dir=seed_dir / "runs" / name,
            device=device,
            progress=progress,
            overwrite=True,
        )
        log(f"{prefix} {name}: test accuracy {result.test_accuracy:.3f}")
        models[name] = result.model
    return models


def run_demo(
    dataset: str = "shapes",
    seeds: int = 1,
    epochs: int = 12,
    methods: Sequence[str] = METHODS,
    out: str | Path = "report",
    device: str | None = None,
    progress: bool = True,
    train_size: int = 2000,
    log: Callable[[str], None] = print,
) -> dict:
    """Train and evaluate every method for each seed; write per-seed reports and the summary.

    ``train_size`` sets the number of ``shapes`` training images (digits has a fixed size).

    Returns:
        ``{"summary": ..., "seconds": ...}`` as written to ``out/summary.json``.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(out)
    started = time.perf_counter()
    per_seed = []
    for seed in range(seeds):
        seed_dir = out / f"seed{seed}"
        experiments = {
            method: demo_experiment(method, dataset, seed, epochs, train_size) for method in methods
        }
        models = train_all(experiments, seed_dir, device, progress, log, f"[seed {seed}]")
        test_set = load_test_dataset(demo_experiment(methods[0], dataset, seed, epochs, train_size))
        loader = DeviceLoader(test_set, 256, shuffle=False, device=device)
        evaluators = ["accuracy", "calibration", "robustness", "randomization", "faithfulness"]
        if test_set.masks is not None:
            evaluators.append("localization")
        log(f"[seed {seed}] evaluating {len(models)} models: {', '.join(evaluators)}")
        results = report(
            models,
            loader,
            seed_dir,
            evaluators=evaluators,
            explainer_factory="gradcam",
            corruptions="all",
            severities=DEMO_SEVERITIES,
            attack=("fgsm", "pgd"),
            eps=DEMO_EPS,
            grid_images=8,
            progress=progress,
            seed=seed,
        )
        per_seed.append(results["models"])
    summary = summarize(per_seed)
    written = {
        "dataset": dataset,
        "seeds": seeds,
        "epochs": epochs,
        "settings": dataclasses.asdict(demo_experiment(methods[0], dataset, 0, epochs, train_size)),
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(written, indent=2))
    table = summary_markdown(summary)
    comparisons = comparison_markdown(per_seed)
    (out / "summary.md").write_text(
        f"# explainaug demo on {dataset}\n\n{seeds} seed(s), {epochs} epoch(s), "
        f"{written['seconds']} s. Mean{' ± std' if seeds > 1 else ''} over seeds; best in bold. "
        f"Per-seed reports: seed*/report.md.\n\n{table}\n\n"
        "## Paired differences over seeds\n\nPer-seed differences between two methods trained "
        "with the same seeds; a method is called better only when the 95% Student-t interval "
        f"of the mean difference excludes 0.\n\n{comparisons}\n"
    )
    log(table)
    log(f"done in {written['seconds']} s; report in {out}/")
    return written


def run_shortcut(
    seeds: int = 3,
    epochs: int = 12,
    methods: Sequence[str] = METHODS,
    out: str | Path = "report",
    device: str | None = None,
    progress: bool = True,
    train_size: int = 2000,
    log: Callable[[str], None] = print,
) -> dict:
    """The shortcut table: each method trained on cued ``shapes`` (``SHORTCUT_CUE_CORRELATION``)
    with the demo's settings, evaluated by ``explainaug.evaluate.shortcut`` on cue-aligned and
    cue-conflicting test images, with Grad-CAM (the explainer ExCon and EDDA train with).

    Writes ``out/shortcut/seed*/report.md`` (and json, figures: the saliency grid shows
    conflicting images) and ``out/shortcut/summary.md`` / ``summary.json``.

    Returns:
        ``{"summary": ..., "seconds": ...}`` as written to ``out/shortcut/summary.json``.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(out) / "shortcut"
    started = time.perf_counter()
    per_seed = []
    for seed in range(seeds):
        seed_dir = out / f"seed{seed}"
        experiments = {
            method: dataclasses.replace(
                demo_experiment(method, "shapes", seed, epochs, train_size),
                cue_correlation=SHORTCUT_CUE_CORRELATION,
            ).validate()
            for method in methods
        }
        models = train_all(experiments, seed_dir, device, progress, log, f"[shortcut seed {seed}]")
        experiment = experiments[methods[-1]]
        aligned, conflicting = load_shortcut_datasets(experiment)
        log(f"[shortcut seed {seed}] evaluating {len(models)} models on aligned/conflicting cues")
        results = report(
            models,
            DeviceLoader(conflicting, 256, shuffle=False, device=device),
            seed_dir,
            evaluators=["shortcut"],
            explainer_factory=experiment.explainer,
            shortcut_loaders=tuple(
                DeviceLoader(data, 256, shuffle=False, device=device, cue_masks=True)
                for data in (aligned, conflicting)
            ),
            grid_images=8,
            progress=progress,
            seed=seed,
        )
        per_seed.append(results["models"])
    summary = summarize(per_seed, SHORTCUT_HEADLINES)
    written = {
        "seeds": seeds,
        "epochs": epochs,
        "settings": dataclasses.asdict(experiment),
        "summary": summary,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(written, indent=2))
    table = summary_markdown(summary, SHORTCUT_HEADLINES)
    comparisons = comparison_markdown(per_seed, SHORTCUT_HEADLINES)
    (out / "summary.md").write_text(
        f"# explainaug shortcut testbed\n\nTrained on shapes whose cue shows the image's class "
        f"with probability {SHORTCUT_CUE_CORRELATION}; tested on cue-aligned and cue-conflicting "
        f"images. {seeds} seed(s), {epochs} epoch(s), {written['seconds']} s. "
        f"Mean{' ± std' if seeds > 1 else ''} over seeds; best in bold; shares of Grad-CAM "
        f"energy (a uniform map puts {_cue_area(per_seed):.3f} on the cue). Per-seed reports: "
        f"seed*/report.md.\n\n{table}\n\n## Paired differences over seeds\n\n"
        f"A method is called better only when the 95% Student-t interval of the mean "
        f"difference excludes 0.\n\n{comparisons}\n"
    )
    log(table)
    log(f"shortcut table done in {written['seconds']} s; report in {out}/")
    return written


def _cue_area(per_seed: Sequence[Mapping[str, Mapping]]) -> float:
    """The cue's share of the image area (the same test images for every model and seed)."""
    return next(iter(per_seed[0].values()))["shortcut"]["aligned"]["cue_area"]


def demo_main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry of ``explainaug demo``."""
    parser = argparse.ArgumentParser(
        prog="explainaug demo", description=plain_text(__doc__), formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--dataset",
        choices=dataset_names(needs_root=False),
        default="shapes",
        help="shipped data to train on (digits has no object masks: no localization)",
    )
    parser.add_argument("--seeds", type=int, default=1, help="seeds to run (mean and spread)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs of every method")
    parser.add_argument(
        "--methods", nargs="+", choices=METHODS, default=list(METHODS), help="methods to compare"
    )
    parser.add_argument(
        "--train-size", type=int, default=2000, help="training images (shapes only)"
    )
    parser.add_argument("--out", default="report", help="report folder")
    parser.add_argument("--device", default=None, help=DEVICE_HELP)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.add_argument(
        "--tables",
        nargs="+",
        choices=("main", "shortcut"),
        default=["main"],
        help="main: the comparison table; shortcut: the shortcut testbed (trains every method "
        "again, on cued shapes)",
    )
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.epochs < 1 or args.train_size < 4:
        parser.error("--seeds and --epochs must be >= 1, --train-size >= 4")
    if "shortcut" in args.tables and args.dataset != "shapes":
        parser.error(f"--tables shortcut needs --dataset shapes, got {args.dataset}")
    if "main" in args.tables:
        run_demo(
            args.dataset,
            args.seeds,
            args.epochs,
            args.methods,
            args.out,
            args.device,
            progress=not args.no_progress,
            train_size=args.train_size,
        )
    if "shortcut" in args.tables:
        run_shortcut(
            args.seeds,
            args.epochs,
            args.methods,
            args.out,
            args.device,
            progress=not args.no_progress,
            train_size=args.train_size,
        )
    return 0
