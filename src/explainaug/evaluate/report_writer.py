"""Write evaluation results as report.json, report.md (tables comparing models) and PNG figures.

Only formatting lives here: the functions take the plain results dictionary that
``explainaug.evaluate.report`` builds (``{"settings": ..., "models": {name: {evaluator:
result}}}``) and never run a model. Each evaluator's entry in ``registry.EVALUATORS`` names its
table (``results by model -> Markdown or None``) and figure (``results by model, folder -> PNG
names``) among the functions below. Figures use matplotlib's object API with the Agg canvas, so
no display or global backend is touched.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from explainaug.evaluate.shortcut import SHORTCUT_SETS
from explainaug.registry import EVALUATORS, resolve


def to_plain(value: object) -> object:
    """Turn results into JSON-safe values: str keys, lists, floats, NaN/inf as ``None``.

    Example:
        >>> to_plain({1: torch.tensor([0.5, float("nan")]), "b": (1, 2)})
        {'1': [0.5, None], 'b': [1, 2]}
    """
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, Tensor):
        return to_plain(value.detach().cpu().tolist())
    if isinstance(value, np.ndarray):
        return to_plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (float, np.floating, np.integer)):
        number = float(value)
        return number if math.isfinite(number) else None
    raise TypeError(f"cannot write {type(value).__name__} to the report")


def _cell(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def scalar_table(models: Mapping[str, Mapping], evaluator: str) -> str | None:
    """A table of an evaluator's top-level numbers, one row per model."""
    keys: list[str] = []
    for results in models.values():
        for key, value in results.get(evaluator, {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in keys:
                keys.append(key)
    if not keys:
        return None
    rows = [
        [name] + [results[evaluator].get(key) for key in keys]
        for name, results in models.items()
        if evaluator in results
    ]
    return _table(["model"] + keys, rows)


def accuracy_table(models: Mapping[str, Mapping]) -> str | None:
    """The accuracy numbers, one row per model."""
    return scalar_table(models, "accuracy")


def localization_table(models: Mapping[str, Mapping]) -> str | None:
    """The localization numbers, one row per model."""
    return scalar_table(models, "localization")


def calibration_table(models: Mapping[str, Mapping]) -> str | None:
    """Temperature, clean accuracy/ECE/NLL/Brier and the mean over corruptions, per model."""
    rows = []
    for name, results in models.items():
        cal = results.get("calibration")
        if cal is None:
            continue
        clean, shifted = cal["clean"], cal.get("mean", {})
        rows.append(
            [
                name,
                cal.get("temperature"),
                clean["accuracy"],
                clean["ece"],
                clean["nll"],
                clean["brier"],
                shifted.get("accuracy"),
                shifted.get("ece"),
            ]
        )
    header = ["model", "T", "accuracy", "ECE", "NLL", "Brier", "accuracy (shift)", "ECE (shift)"]
    return _table(header, rows) if rows else None


def robustness_table(models: Mapping[str, Mapping]) -> str | None:
    """Clean and adversarial accuracy at each attack and budget, per model."""
    columns: list[tuple[str, str]] = []
    for results in models.values():
        for attack, by_eps in results.get("robustness", {}).get("adversarial", {}).items():
            columns += [(attack, eps) for eps in by_eps if (attack, eps) not in columns]
    rows = [
        [name, results["robustness"]["clean"]]
        + [results["robustness"]["adversarial"].get(attack, {}).get(eps) for attack, eps in columns]
        for name, results in models.items()
        if "robustness" in results
    ]
    header = ["model", "clean"] + [
        f"{attack} eps={float(eps) * 255:.1f}/255" for attack, eps in columns
    ]
    return _table(header, rows) if rows else None


def randomization_table(models: Mapping[str, Mapping]) -> str | None:
    """Similarity to the original maps after the first and the last randomization step."""
    rows = []
    for name, results in models.items():
        result = results.get("randomization")
        if result is None:
            continue
        for metric, curve in result["similarity"].items():
            control = result.get("random_map", {}).get(metric, {}).get("mean")
            rows.append([name, metric, curve["mean"][0], curve["mean"][-1], control])
    header = ["model", "similarity", "after first step", "fully randomized", "random-map control"]
    if not rows:
        return None
    counts = {
        name: results["randomization"].get("n_images")
        for name, results in models.items()
        if "randomization" in results
    }
    used = ", ".join(f"{name}: {count}" for name, count in counts.items())
    fewer = any(count is not None and count < 200 for count in counts.values())
    note = " (fewer than the reference protocol's 200)" if fewer else " (as Adebayo et al.)"
    return f"{_table(header, rows)}\n\nImages per model: {used}{note}."


def faithfulness_table(models: Mapping[str, Mapping]) -> str | None:
    """The faithfulness numbers, then the colour each model's removed pixels were filled with."""
    table = scalar_table(models, "faithfulness")
    fills = {
        name: results["faithfulness"]["fill"]
        for name, results in models.items()
        if "fill" in results.get("faithfulness", {})
    }
    if table is None or not fills:
        return table
    described = "; ".join(f"{name}: {_fill_text(fill)}" for name, fill in fills.items())
    return (
        f"{table}\n\nRemoved pixels filled with (in [0, 1] pixels): {described}. Insertion "
        "starts from RISE's blur (sigma 5 folded into 11x11, padded with the fill)."
    )


def _fill_text(fill: object) -> str:
    if isinstance(fill, list):
        return "(" + ", ".join(f"{value:.3f}" for value in fill) + ")"
    return "each image's mean colour" if fill == "mean" else str(fill)


# (column label, key of one test set's shortcut results)
_SHORTCUT_COLUMNS = (
    ("accuracy", "accuracy"),
    ("cue share", "cue_share"),
    ("object share", "object_share"),
)


def shortcut_table(models: Mapping[str, Mapping]) -> str | None:
    """Accuracy and saliency shares on cue-aligned and cue-conflicting images, per model."""
    rows = []
    for name, results in models.items():
        result = results.get("shortcut")
        if result is None:
            continue
        cells = [result[kind][key] for _, key in _SHORTCUT_COLUMNS for kind in SHORTCUT_SETS]
        rows.append([name, *cells, result["gap"], result["aligned"]["cue_area"]])
    header = [f"{label} ({kind})" for label, _ in _SHORTCUT_COLUMNS for kind in SHORTCUT_SETS]
    return _table(["model", *header, "gap", "cue area"], rows) if rows else None


def markdown(results: Mapping) -> str:
    """The report as Markdown: warnings, settings, then one table per evaluator comparing the
    models.

    Example:
        >>> results = {"warnings": ["unfinished"], "models": {"a": {"accuracy": {"top1": 0.5}}}}
        >>> text = markdown(results)
        >>> "| a | 0.5000 |" in text, "- unfinished" in text.split("## Warnings")[1]
        (True, True)
    """
    models = results["models"]
    sections = ["# Evaluation report", ""]
    if results.get("warnings"):
        sections += ["## Warnings", ""] + [f"- {line}" for line in results["warnings"]] + [""]
    settings = results.get("settings", {})
    if settings:
        sections += ["## Settings", ""] + [f"- {key}: {value}" for key, value in settings.items()]
        sections.append("")
    for name, entry in EVALUATORS.items():
        if entry.table is None or not any(name in per_model for per_model in models.values()):
            continue
        table = resolve(entry.table)(models)
        if table is not None:
            sections += [f"## {entry.title}", "", table, ""]
    figures = results.get("figures", [])
    if figures:
        sections += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures]
    return "\n".join(sections) + "\n"


def _save(figure: Figure, path: Path) -> str:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path.name


def calibration_figures(models: Mapping[str, Mapping], out_dir: Path) -> list[str]:
    """The reliability diagrams and the accuracy/ECE-vs-severity curves."""
    return [
        name
        for name in (_reliability_figure(models, out_dir), _severity_figure(models, out_dir))
        if name is not None
    ]


def _reliability_figure(models: Mapping[str, Mapping], out_dir: Path) -> str | None:
    diagrams = {
        name: r["calibration"]["clean"]["reliability"]
        for name, r in models.items()
        if "calibration" in r
    }
    if not diagrams:
        return None
    figure = Figure(figsize=(4 * len(diagrams), 4))
    for index, (name, diagram) in enumerate(diagrams.items()):
        axes = figure.add_subplot(1, len(diagrams), index + 1)
        edges = np.asarray(diagram["edges"], dtype=float)
        accuracy = np.asarray([a if a is not None else 0.0 for a in diagram["accuracy"]])
        axes.bar(
            edges[:-1],
            accuracy,
            width=np.diff(edges),
            align="edge",
            edgecolor="k",
            alpha=0.7,
            label="accuracy",
        )
        axes.plot([0, 1], [0, 1], "r--", label="perfect calibration")
        axes.set(title=name, xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1))
        axes.legend(loc="upper left")
    return _save(figure, out_dir / "reliability.png")


def _severity_figure(models: Mapping[str, Mapping], out_dir: Path) -> str | None:
    curves = {}
    for name, results in models.items():
        cells = results.get("calibration", {}).get("corruptions")
        if not cells:
            continue
        severities = sorted({int(s) for by_severity in cells.values() for s in by_severity})
        by_metric = {}
        for metric in ("accuracy", "ece"):
            by_metric[metric] = [
                np.mean(
                    [
                        cells[c][key][metric]
                        for c in cells
                        for key in cells[c]
                        if int(key) == severity
                    ]
                )
                for severity in severities
            ]
        clean = results["calibration"]["clean"]
        curves[name] = (
            [0] + severities,
            {m: [clean[m]] + values for m, values in by_metric.items()},
        )
    if not curves:
        return None
    figure = Figure(figsize=(9, 4))
    for index, metric in enumerate(("accuracy", "ece")):
        axes = figure.add_subplot(1, 2, index + 1)
        for name, (severities, values) in curves.items():
            axes.plot(severities, values[metric], marker="o", label=name)
        axes.set(
            xlabel="severity (0 = clean)",
            ylabel=metric.upper() if metric == "ece" else metric,
            title=f"{metric} vs corruption severity",
        )
        axes.legend()
    return _save(figure, out_dir / "calibration_vs_severity.png")


def robustness_figure(models: Mapping[str, Mapping], out_dir: Path) -> list[str]:
    entries = {name: r["robustness"] for name, r in models.items() if "robustness" in r}
    if not entries:
        return []
    figure = Figure(figsize=(5, 4))
    axes = figure.add_subplot(1, 1, 1)
    for name, result in entries.items():
        for attack, by_eps in result["adversarial"].items():
            eps = [0.0] + [float(e) * 255 for e in by_eps]
            axes.plot(
                eps,
                [result["clean"]] + list(by_eps.values()),
                marker="o",
                label=f"{name} ({attack})",
            )
    axes.set(xlabel="eps (x/255)", ylabel="accuracy", title="adversarial accuracy")
    axes.legend()
    return [_save(figure, out_dir / "robustness.png")]


def randomization_figure(models: Mapping[str, Mapping], out_dir: Path) -> list[str]:
    entries = {name: r["randomization"] for name, r in models.items() if "randomization" in r}
    if not entries:
        return []
    metrics = list(next(iter(entries.values()))["similarity"])
    figure = Figure(figsize=(4.5 * len(metrics), 4.5))
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), index + 1)
        for name, result in entries.items():
            means = [1.0] + [
                v if v is not None else np.nan for v in result["similarity"][metric]["mean"]
            ]
            axes.plot(range(len(means)), means, marker="o", label=name)
            control = result.get("random_map", {}).get(metric, {}).get("mean")
            if control is not None:
                axes.axhline(control, linestyle=":", color="gray")
        steps = ["original"] + next(iter(entries.values()))["steps"]
        axes.set_xticks(range(len(steps)))
        axes.set_xticklabels(steps, rotation=90, fontsize=6)
        axes.set(
            title=f"{metric} ({next(iter(entries.values()))['mode']})",
            ylim=(-1.05, 1.05),
            ylabel="similarity to original",
        )
        axes.legend(fontsize=7)
    return [_save(figure, out_dir / "randomization.png")]


def faithfulness_figure(models: Mapping[str, Mapping], out_dir: Path) -> list[str]:
    entries = {name: r["faithfulness"] for name, r in models.items() if "faithfulness" in r}
    if not entries:
        return []
    figure = Figure(figsize=(9, 4))
    for index, kind in enumerate(("deletion", "insertion")):
        axes = figure.add_subplot(1, 2, index + 1)
        for name, result in entries.items():
            curve = result[f"{kind}_curve"]
            axes.plot(
                np.linspace(0, 1, len(curve)),
                curve,
                label=f"{name} (AUC {result[f'{kind}_auc']:.3f})",
            )
        axes.set(xlabel="fraction of pixels", ylabel="probability of the class", title=kind)
        axes.legend()
    return [_save(figure, out_dir / "deletion_insertion.png")]


def shortcut_figure(models: Mapping[str, Mapping], out_dir: Path) -> list[str]:
    """Grouped bars per model: accuracy, cue share and object share, aligned vs conflicting."""
    entries = {name: r["shortcut"] for name, r in models.items() if "shortcut" in r}
    if not entries:
        return []
    figure = Figure(figsize=(4.5 * len(_SHORTCUT_COLUMNS), 4))
    positions = np.arange(len(entries))
    width = 0.8 / len(SHORTCUT_SETS)
    chance = {"cue_share": "cue_area", "object_share": "object_area"}
    for index, (label, key) in enumerate(_SHORTCUT_COLUMNS):
        axes = figure.add_subplot(1, len(_SHORTCUT_COLUMNS), index + 1)
        for offset, kind in enumerate(SHORTCUT_SETS):
            values = [result[kind][key] for result in entries.values()]
            axes.bar(positions + offset * width, values, width, label=kind)
        if key in chance:
            level = np.mean([result["aligned"][chance[key]] for result in entries.values()])
            axes.axhline(level, linestyle=":", color="gray", label="uniform map")
        axes.set_xticks(positions + width * (len(SHORTCUT_SETS) - 1) / 2)
        axes.set_xticklabels(list(entries), rotation=30, fontsize=7)
        axes.set_title(label)
        axes.set_ylim(0, 1 if key == "accuracy" else None)  # shares: room to see them
        axes.legend(fontsize=7)
    return [_save(figure, out_dir / "shortcut.png")]


def _saliency_grid(images: np.ndarray, maps: Mapping[str, np.ndarray], out_dir: Path) -> str:
    """Images in the first row, each model's maps over them in the next rows."""
    n = images.shape[0]
    figure = Figure(figsize=(1.6 * n, 1.6 * (len(maps) + 1)))
    rows = [("image", None)] + list(maps.items())
    for row, (name, model_maps) in enumerate(rows):
        for column in range(n):
            axes = figure.add_subplot(len(rows), n, row * n + column + 1)
            image = images[column].transpose(1, 2, 0)
            axes.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
            if model_maps is not None:
                axes.imshow(model_maps[column, 0], cmap="jet", alpha=0.5)
            axes.set_xticks([])
            axes.set_yticks([])
            if column == 0:
                axes.set_ylabel(name, fontsize=8)
    return _save(figure, out_dir / "saliency_grid.png")


def write_report(
    results: Mapping,
    out_dir: str | Path,
    images: np.ndarray | None = None,
    maps: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Write ``report.json``, ``report.md`` and the figures the results allow into ``out_dir``.

    Args:
        results: ``{"settings": {...}, "models": {name: {evaluator: result}}}``.
        out_dir: created if missing.
        images: optional ``[N, C, H, W]`` images in [0, 1] for the saliency grid.
        maps: optional ``{model name: [N, 1, H, W]}`` saliency maps of those images.

    Returns:
        The JSON-safe results, with ``"figures"`` listing the PNG files written.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as out:
        ...     written = write_report({"models": {"a": {"accuracy": {"top1": 0.5}}}}, out)
        >>> written["models"]["a"]["accuracy"]["top1"]
        0.5
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plain = to_plain(results)
    models = plain["models"]
    figures = [
        figure
        for name, entry in EVALUATORS.items()
        if entry.figure is not None and any(name in per_model for per_model in models.values())
        for figure in resolve(entry.figure)(models, out)
    ]
    if images is not None and maps:
        figures.append(_saliency_grid(images, maps, out))
    plain["figures"] = figures
    (out / "report.json").write_text(json.dumps(plain, indent=2, allow_nan=False))
    (out / "report.md").write_text(markdown(plain))
    return plain
