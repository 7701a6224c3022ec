"""Run the evaluators for one or more models and write a comparison report.

``report`` is the one call a command line needs: models by name, a test loader (images float in
[0, 1]), the evaluators to run and an output folder. Metric code lives in the evaluator modules;
formatting lives in ``report_writer``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from explainaug._shared import eval_mode
from explainaug.catalog import EVALUATORS, OPTIONAL_EVALUATORS, SIGNED_OPTIONS, explainer_names
from explainaug.evaluate._predict import iterate_batches, model_device
from explainaug.evaluate.accuracy import accuracy
from explainaug.evaluate.calibration import calibration
from explainaug.evaluate.faithfulness import faithfulness
from explainaug.evaluate.localization import localization
from explainaug.evaluate.randomization import model_randomization
from explainaug.evaluate.report_writer import write_report
from explainaug.evaluate.robustness import robustness
from explainaug.evaluate.shortcut import shortcut
from explainaug.evaluate.similarity import SIMILARITIES
from explainaug.explain import Explainer
from explainaug.explain.registry import build_explainer

EXPLANATION_EVALUATORS = ("randomization", "faithfulness", "localization", "shortcut")
ExplainerSpec = str | Callable[[nn.Module], Explainer] | None
ExplainerSpecs = ExplainerSpec | Sequence[str] | Mapping[str, ExplainerSpec]


def resolve_explainer_factory(
    spec: ExplainerSpec, *, signed: bool = False, **options: object
) -> Callable[[nn.Module], Explainer]:
    """A factory ``model -> Explainer`` from a callable or a name of the explainer registry.

    Names are matched case-insensitively (``"gradcam"`` -> ``GradCAM``); the explainer is built
    with ``options`` (e.g. ``layer=``, ``relu=``) over its defaults (e.g. the model's
    ``default_cam_layer``). ``signed`` builds the method's signed variant (the signed gradient
    of ``"saliency"``, see ``catalog.SIGNED_OPTIONS``), which the randomization sanity checks
    need for their no-ABS Spearman; a callable is returned as it is.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> resolve_explainer_factory("saliency")(SmallCNN(num_classes=4, width=4))
        Saliency(SmallCNN)
        >>> resolve_explainer_factory("saliency", signed=True)(SmallCNN(num_classes=4)).abs
        False
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise ValueError(
            "explainer_factory is needed for randomization, faithfulness and "
            "localization: pass a callable model -> Explainer or a class name"
        )
    if spec.lower() not in explainer_names():
        raise ValueError(
            f"unknown explainer {spec!r}; choose one of {', '.join(explainer_names())}"
        )
    if signed:
        options = {**options, **SIGNED_OPTIONS.get(spec.lower(), {})}
    return functools.partial(build_explainer, spec, **options)


def describe_explainer(spec: ExplainerSpec, *, signed: bool = False, **options: object) -> object:
    """How the report builds its explainer, for its settings: ``{"name", **options}`` for a
    registry name (with the signed options when ``signed``), the callable's name otherwise.

    Example:
        >>> describe_explainer("GradCAM", layer="layer2", relu=False)
        {'name': 'gradcam', 'layer': 'layer2', 'relu': False}
    """
    if isinstance(spec, str):
        signed_options = SIGNED_OPTIONS.get(spec.lower(), {}) if signed else {}
        return {"name": spec.lower(), **options, **signed_options}
    return getattr(spec, "__name__", repr(spec)) if spec is not None else None


def labelled_explainers(specs: ExplainerSpecs) -> dict[str | None, ExplainerSpec]:
    """One explainer spec (label ``None``) or several by label, to compare them on one model.

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
        raise ValueError("explainer_factory must name at least one explainer, got none")
    return labelled


def first_images(loader: Iterable, n: int, device: torch.device) -> Tensor:
    """The first ``n`` images of a loader (fewer if it holds fewer), on ``device``.

    Example:
        >>> loader = [(torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long))] * 2
        >>> first_images(loader, 4, torch.device("cpu")).shape
        torch.Size([4, 1, 2, 2])
    """
    taken: list[Tensor] = []
    total = 0
    for x, _, _ in iterate_batches(loader, device):
        taken.append(x[: n - total])
        total += taken[-1].shape[0]
        if total >= n:
            break
    return torch.cat(taken)


def _check_models(models: Mapping[str, nn.Module] | nn.Module) -> dict[str, nn.Module]:
    if isinstance(models, nn.Module):
        return {"model": models}
    if not isinstance(models, Mapping) or not models:
        raise ValueError("models must be a non-empty dict {name: nn.Module} (or one nn.Module)")
    for name, model in models.items():
        if not isinstance(model, nn.Module):
            raise TypeError(f"models[{name!r}] must be an nn.Module, got {type(model).__name__}")
    return dict(models)


def _check_evaluators(evaluators: Sequence[str] | str) -> tuple[str, ...]:
    chosen = (evaluators,) if isinstance(evaluators, str) else tuple(evaluators)
    known = EVALUATORS + OPTIONAL_EVALUATORS
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise ValueError(f"evaluators must name some of {list(known)}, got {list(chosen)}")
    return chosen


def report(
    models: Mapping[str, nn.Module] | nn.Module,
    loader: Iterable,
    out_dir: str | Path,
    *,
    evaluators: Sequence[str] | str = EVALUATORS,
    explainer_factory: ExplainerSpecs = None,
    explainer_options: dict | None = None,
    mask_loader: Iterable | None = None,
    shortcut_loaders: tuple[Iterable, Iterable] | None = None,
    corruptions: str | Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    attack: str | Sequence[str] = "pgd",
    eps: Sequence[float] = (2 / 255, 4 / 255, 8 / 255),
    randomization_mode: str = "cascading",
    randomization_images: int = 200,
    similarity: Sequence[str] = tuple(SIMILARITIES),
    faithfulness_options: dict | None = None,
    grid_images: int = 8,
    progress: bool = True,
    seed: int = 0,
) -> dict:
    """Evaluate each model and write ``report.json``, ``report.md`` and PNG figures.

    Args:
        models: ``{name: model}`` (or a single model, named "model"); classifiers taking images
            in [0, 1]. Each runs in eval mode; modes are restored.
        loader: test batches ``(x, y)`` or ``(x, y, masks)``; re-iterable (a DataLoader or list).
        out_dir: folder for the report (created if missing).
        evaluators: any of ``EVALUATORS`` and ``OPTIONAL_EVALUATORS``.
        explainer_factory: ``model -> Explainer`` or an explainer class name (``"gradcam"``);
            needed for randomization, faithfulness and localization. A name builds the signed
            variant for randomization (the signed gradient for ``"saliency"``, so the no-ABS
            Spearman sees signs); a callable is used as given everywhere. A list of names or a
            ``{label: name or factory}`` dict compares several explainers on each model: their
            explanation results and maps get one row each, ``"model [label]"``.
        explainer_options: constructor options for every explainer given by name (``layer=``,
            ``relu=``, e.g. the training run's; see ``explainaug.experiment.explainer_options``).
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

    Returns:
        The JSON-safe results written to ``report.json``: ``{"settings", "models": {name:
        {evaluator: result}}, "figures": [PNG names]}``.

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
    if "shortcut" in chosen and (
        not isinstance(shortcut_loaders, (tuple, list)) or len(shortcut_loaders) != 2
    ):
        raise ValueError(
            "the shortcut evaluator needs shortcut_loaders=(aligned_loader, conflicting_loader), "
            f"got {shortcut_loaders!r}"
        )
    explains = any(name in EXPLANATION_EVALUATORS for name in chosen)
    options = explainer_options or {}
    specs = labelled_explainers(explainer_factory)
    factories: dict[str | None, tuple[Callable, Callable]] = {}
    if explains or explainer_factory is not None:
        factories = {
            label: (
                resolve_explainer_factory(spec, **options),
                resolve_explainer_factory(spec, signed=True, **options),
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
        "faithfulness_options": faithfulness_options or {},
        "seed": seed,
        "explainer": _by_label(
            {label: describe_explainer(spec, **options) for label, spec in specs.items()}
        ),
        "randomization_explainer": _by_label(
            {
                label: describe_explainer(spec, signed=True, **options)
                for label, spec in specs.items()
            }
        ),
    }
    per_model: dict[str, dict] = {}
    maps: dict[str, Tensor] = {}
    images = None
    jobs = [
        (name, evaluator, label)
        for name in models
        for evaluator in chosen
        for label in (factories if evaluator in EXPLANATION_EVALUATORS else [None])
    ]
    for name, evaluator, label in tqdm(jobs, desc="report", disable=not progress):
        model = models[name]
        factory, sanity_factory = factories.get(label, (None, None))
        per_model.setdefault(_row(name, label), {})[evaluator] = _run(
            evaluator,
            model,
            loader,
            factory,
            sanity_factory,
            mask_loader=mask_loader,
            shortcut_loaders=shortcut_loaders,
            corruptions=corruptions,
            severities=severities,
            attack=attack,
            eps=eps,
            randomization_mode=randomization_mode,
            randomization_images=randomization_images,
            similarity=similarity,
            faithfulness_options=faithfulness_options or {},
            progress=progress,
            seed=seed,
        )
    if factories and grid_images > 0:
        for name, model in models.items():
            x = first_images(loader, grid_images, model_device(model))
            for label, (factory, _) in factories.items():
                with eval_mode(model):
                    maps[_row(name, label)] = factory(model)(x).detach().cpu()
            images = x.cpu()
    results = {"settings": settings, "models": per_model}
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


def _run(
    evaluator: str,
    model: nn.Module,
    loader: Iterable,
    factory: Callable[[nn.Module], Explainer] | None,
    sanity_factory: Callable[[nn.Module], Explainer] | None,
    *,
    mask_loader: Iterable | None,
    shortcut_loaders: tuple[Iterable, Iterable] | None,
    corruptions: str | Sequence[str] | None,
    severities: Sequence[int],
    attack: str | Sequence[str],
    eps: Sequence[float],
    randomization_mode: str,
    randomization_images: int,
    similarity: Sequence[str],
    faithfulness_options: dict,
    progress: bool,
    seed: int,
) -> dict:
    """Run one evaluator on one model (``sanity_factory``: the signed explainer of randomization)."""
    if evaluator == "accuracy":
        return accuracy(model, loader)
    if evaluator == "calibration":
        return calibration(model, loader, corruptions=corruptions, severities=severities, seed=seed)
    if evaluator == "robustness":
        return robustness(model, loader, attack=attack, eps=eps, seed=seed)
    assert factory is not None and sanity_factory is not None
    if evaluator == "randomization":
        x = first_images(loader, randomization_images, model_device(model))
        return model_randomization(
            model, sanity_factory, x, mode=randomization_mode, similarity=similarity, seed=seed
        )
    explainer = factory(model)
    if evaluator == "faithfulness":
        options = {"seed": seed, **faithfulness_options}
        return faithfulness(model, explainer, loader, progress=progress, **options)
    if evaluator == "shortcut":
        assert shortcut_loaders is not None
        return shortcut(model, explainer, *shortcut_loaders, progress=progress)
    masked = mask_loader if mask_loader is not None else loader
    return localization(model, explainer, masked, seed=seed, progress=progress)
