"""Run the evaluators for one or more models and write a comparison report.

``report`` is the one call a command line needs: models by name, a test loader (images float in
[0, 1]), the evaluators to run and an output folder. Each evaluator is an entry of
``registry.EVALUATORS``: its ``run_in_report(job)`` runs it on one model (a :class:`Job`), its
table, figure and headline numbers are named there too. Metric code lives in the evaluator
modules; formatting lives in ``report_writer``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn
from tqdm.auto import tqdm

from explainaug._shared import eval_mode
from explainaug.evaluate._predict import first_images, model_device, predict
from explainaug.evaluate.faithfulness import degenerate_warning
from explainaug.evaluate.report_writer import write_report
from explainaug.evaluate.similarity import SIMILARITIES
from explainaug.explain import build_explainer
from explainaug.registry import EVALUATORS, EXPLAINERS
from explainaug.typing import ExplainerFactory

Explainers = str | ExplainerFactory | Sequence[str] | Mapping[str, str | ExplainerFactory] | None


@dataclass(frozen=True)
class ReportOptions:
    """The evaluators' options of one report (see :func:`report` for each)."""

    corruptions: str | Sequence[str] | None = None
    severities: Sequence[int] = (1, 2, 3, 4, 5)
    attack: str | Sequence[str] = "pgd"
    eps: Sequence[float] = (2 / 255, 4 / 255, 8 / 255)
    randomization_mode: str = "cascading"
    randomization_images: int = 200
    similarity: Sequence[str] = tuple(SIMILARITIES)
    faithfulness_options: Mapping[str, object] = field(default_factory=dict)
    progress: bool = True
    seed: int = 0


@dataclass
class Job:
    """What one evaluator gets to evaluate one model (with one explainer).

    Attributes:
        model: the classifier (images in [0, 1]).
        loader: the test batches (re-iterable).
        options: the report's options.
        explainer: builds the explainer of a model (explanation evaluators only).
        signed_explainer: builds its signed variant (the randomization sanity checks).
        mask_loader: batches with object masks for localization (default ``loader``).
        shortcut_loaders: the cue-aligned and cue-conflicting loaders of ``shortcut``.
    """

    model: nn.Module
    loader: Iterable
    options: ReportOptions
    explainer: ExplainerFactory | None = None
    signed_explainer: ExplainerFactory | None = None
    mask_loader: Iterable | None = None
    shortcut_loaders: tuple[Iterable, Iterable] | None = None
    _clean: list[tuple[Tensor, Tensor]] = field(default_factory=list, repr=False)

    def clean_predictions(self) -> tuple[Tensor, Tensor]:
        """The model's ``(logits, labels)`` on the clean test set: computed once per model and
        shared by the evaluators that need them (accuracy, calibration)."""
        if not self._clean:
            self._clean.append(predict(self.model, self.loader))
        return self._clean[0]


def explainer_factory(
    spec: str | ExplainerFactory | None, *, signed: bool = False, **options: object
) -> ExplainerFactory:
    """A factory ``model -> Explainer`` from a callable or a name of ``registry.EXPLAINERS``.

    Names are matched case-insensitively (``"GradCAM"``); the explainer is built with
    ``options`` (e.g. ``layer=``, ``relu=``) over its defaults. ``signed`` builds the method's
    signed variant (the signed gradient of ``"saliency"``, see ``ExplainerEntry.signed``),
    which the randomization sanity checks need for their no-ABS Spearman; a callable is
    returned as it is.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> explainer_factory("saliency")(SmallCNN(num_classes=4, width=4))
        Saliency(SmallCNN)
        >>> explainer_factory("saliency", signed=True)(SmallCNN(num_classes=4)).abs
        False
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise ValueError(
            "an explainer is needed for randomization, faithfulness, localization and "
            "shortcut: pass explainer= as a registry name or a callable model -> Explainer"
        )
    entry = EXPLAINERS[spec]
    if signed:
        options = {**options, **entry.signed}
    return functools.partial(build_explainer, spec, **options)


def describe_explainer(
    spec: str | ExplainerFactory | None, *, signed: bool = False, **options: object
) -> object:
    """How the report builds its explainer, for its settings: ``{"name", **options}`` for a
    registry name (with the signed options when ``signed``), the callable's name otherwise.

    Example:
        >>> describe_explainer("GradCAM", layer="layer2", relu=False)
        {'name': 'gradcam', 'layer': 'layer2', 'relu': False}
    """
    if isinstance(spec, str):
        signed_options = EXPLAINERS[spec].signed if signed else {}
        return {"name": spec.lower(), **options, **signed_options}
    return getattr(spec, "__name__", repr(spec)) if spec is not None else None


def labelled_explainers(specs: Explainers) -> dict[str | None, str | ExplainerFactory | None]:
    """One explainer (label ``None``) or several by label, to compare them on one model.

    A list of registry names or a ``{label: name or factory}`` dict gives several.

    Example:
        >>> list(labelled_explainers(["gradcam", "scorecam"])), list(labelled_explainers("gradcam"))
        (['gradcam', 'scorecam'], [None])
    """
    if isinstance(specs, Mapping):
        labelled = {str(label): spec for label, spec in specs.items()}
    elif isinstance(specs, (list, tuple)):
        labelled = {str(spec): spec for spec in specs}
    else:
        return {None: specs}
    if not labelled:
        raise ValueError("explainer must name at least one explainer, got none")
    return labelled


def _check_models(models: Mapping[str, nn.Module] | nn.Module) -> dict[str, nn.Module]:
    if isinstance(models, nn.Module):
        return {"model": models}
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty dict {name: nn.Module} (or one nn.Module)")
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise TypeError(f"models[{name!r}] must be an nn.Module, got {type(model).__name__}")
    return dict(models)


def _check_evaluators(evaluators: Sequence[str] | str | None) -> tuple[str, ...]:
    if evaluators is None:
        return EVALUATORS.names(optional=False)
    chosen = (evaluators,) if isinstance(evaluators, str) else tuple(evaluators)
    unknown = [name for name in chosen if name not in EVALUATORS]
    if unknown or not chosen:
        raise ValueError(f"evaluators must name some of {list(EVALUATORS)}, got {list(chosen)}")
    return chosen


def report(
    models: Mapping[str, nn.Module] | nn.Module,
    loader: Iterable,
    out_dir: str | Path,
    *,
    evaluators: Sequence[str] | str | None = None,
    explainer: Explainers = None,
    explainer_options: Mapping[str, object] | None = None,
    mask_loader: Iterable | None = None,
    shortcut_loaders: tuple[Iterable, Iterable] | None = None,
    corruptions: str | Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    attack: str | Sequence[str] = "pgd",
    eps: Sequence[float] = (2 / 255, 4 / 255, 8 / 255),
    randomization_mode: str = "cascading",
    randomization_images: int = 200,
    similarity: Sequence[str] = tuple(SIMILARITIES),
    faithfulness_options: Mapping[str, object] | None = None,
    grid_images: int = 8,
    progress: bool = True,
    seed: int = 0,
    notes: Sequence[str] = (),
) -> dict:
    """Evaluate each model and write ``report.json``, ``report.md`` and PNG figures.

    Args:
        models: ``{name: model}`` (or a single model, named "model"); classifiers taking images
            in [0, 1]. Each runs in eval mode; modes are restored.
        loader: test batches ``(x, y)`` or ``(x, y, masks)``; re-iterable (a DataLoader or list).
        out_dir: folder for the report (created if missing).
        evaluators: names of ``registry.EVALUATORS``; None runs every evaluator that is not
            optional (``shortcut`` needs data of its own).
        explainer: a registry name (``"gradcam"``) or a callable ``model -> Explainer``;
            needed by the explanation evaluators. A name builds the signed variant for
            randomization (the signed gradient for ``"saliency"``, so the no-ABS Spearman sees
            signs); a callable is used as given everywhere. A list of names or a
            ``{label: name or factory}`` dict compares several explainers on each model: their
            explanation results and maps get one row each, ``"model [label]"``.
        explainer_options: constructor options for every explainer given by name (``layer=``,
            ``relu=``, e.g. the training run's; see ``explain.build.run_options``).
        mask_loader: batches ``(x, y, masks)`` for localization; default ``loader``.
        shortcut_loaders: ``(aligned, conflicting)`` loaders of ``(x, y, masks, cue_masks)``
            batches, needed by the ``"shortcut"`` evaluator (see ``shortcut``).
        corruptions, severities: passed to ``calibration`` (``None``: clean only; ``"all"``).
        attack, eps: passed to ``robustness``.
        randomization_mode: ``"cascading"`` or ``"independent"`` (``model_randomization``).
        randomization_images: number of the loader's first images used by randomization
            (Adebayo et al.'s 200 by default; the report says when it used fewer).
        similarity: similarity names for randomization.
        faithfulness_options: keyword arguments for ``faithfulness`` (``keep``, ``fill``, ...).
        grid_images: images in the saliency grid figure (0: no grid).
        progress: show tqdm progress bars.
        seed: seed for corruptions, attacks and randomization.
        notes: warnings about what was evaluated (an unfinished run, say), shown first in the
            report with those the evaluation raises (constant explanation maps).

    Returns:
        The JSON-safe results written to ``report.json``: ``{"settings", "warnings": [str],
        "models": {name: {evaluator: result}}, "figures": [PNG names]}``.

    Example:
        >>> import tempfile
        >>> from explainaug.models import SmallCNN
        >>> loader = [(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))]
        >>> with tempfile.TemporaryDirectory() as out:
        ...     result = report({"cnn": SmallCNN(num_classes=2, width=4)}, loader, out,
        ...                     evaluators=("accuracy",), progress=False)
        >>> result["models"]["cnn"]["accuracy"]["count"]
        4
    """
    models = _check_models(models)
    chosen = _check_evaluators(evaluators)
    if isinstance(loader, Iterator):  # a generator: the first evaluator would use it up
        raise TypeError(
            "loader must be re-iterable (a DataLoader or a list): every evaluator and model "
            f"runs over it again, got a {type(loader).__name__}"
        )
    needs_cues = [name for name in chosen if EVALUATORS[name].needs == "cues"]
    if needs_cues and (
        not isinstance(shortcut_loaders, (tuple, list)) or len(shortcut_loaders) != 2
    ):
        raise ValueError(
            f"the {needs_cues[0]} evaluator needs shortcut_loaders=(aligned_loader, "
            f"conflicting_loader), got {shortcut_loaders!r}"
        )
    options = ReportOptions(
        corruptions=corruptions,
        severities=tuple(severities),
        attack=attack,
        eps=tuple(eps),
        randomization_mode=randomization_mode,
        randomization_images=randomization_images,
        similarity=tuple(similarity),
        faithfulness_options=dict(faithfulness_options or {}),
        progress=progress,
        seed=seed,
    )
    built = dict(explainer_options or {})
    specs = labelled_explainers(explainer)
    explains = any(EVALUATORS[name].explains for name in chosen)
    factories: dict[str | None, tuple[ExplainerFactory, ExplainerFactory]] = {}
    if explains or explainer is not None:
        factories = {
            label: (
                explainer_factory(spec, **built),
                explainer_factory(spec, signed=True, **built),
            )
            for label, spec in specs.items()
        }
    settings = {
        "evaluators": list(chosen),
        "corruptions": corruptions,
        "severities": list(severities),
        "attack": attack,
        "eps": list(eps),
        "randomization_mode": randomization_mode,
        "randomization_images": randomization_images,
        "similarity": list(similarity),
        "faithfulness_options": dict(faithfulness_options or {}),
        "seed": seed,
        "explainer": _by_label(
            {label: describe_explainer(spec, **built) for label, spec in specs.items()}
        ),
        "randomization_explainer": _by_label(
            {label: describe_explainer(spec, signed=True, **built) for label, spec in specs.items()}
        ),
    }
    jobs = []
    for name, model in models.items():
        shared: list[tuple[Tensor, Tensor]] = []  # the model's clean predictions, once
        for evaluator in chosen:
            labels = factories if EVALUATORS[evaluator].explains else {None: (None, None)}
            for label, (factory, signed) in labels.items():
                job = Job(model, loader, options, factory, signed, mask_loader, shortcut_loaders)
                job._clean = shared
                jobs.append((_row(name, label), evaluator, job))
    per_model: dict[str, dict] = {}
    for row, evaluator, job in tqdm(jobs, desc="report", disable=not progress):
        per_model.setdefault(row, {})[evaluator] = EVALUATORS[evaluator].load()(job)
    maps: dict[str, Tensor] = {}
    images = None
    if factories and grid_images > 0:
        for name, model in models.items():
            x = first_images(loader, grid_images, model_device(model))
            for label, (factory, _) in factories.items():
                with eval_mode(model):
                    maps[_row(name, label)] = factory(model)(x).detach().cpu()
            images = x.cpu()
    warnings = list(notes) + [
        degenerate_warning(result["degenerate_maps"], result["n_images"], row)
        for row, per_evaluator in per_model.items()
        if (result := per_evaluator.get("faithfulness", {})).get("degenerate_maps")
    ]
    results = {"settings": settings, "warnings": warnings, "models": per_model}
    return write_report(
        results,
        out_dir,
        images=None if images is None else images.numpy(),
        maps={name: value.numpy() for name, value in maps.items()} or None,
    )


def _row(model_name: str, explainer_label: str | None) -> str:
    """The report row of a model's results with one of several explainers."""
    return model_name if explainer_label is None else f"{model_name} [{explainer_label}]"


def _by_label(described: dict[str | None, object]) -> object:
    """Settings entry: the one description, or ``{label: description}`` for several."""
    return described[None] if list(described) == [None] else described
