"""Sanity checks for saliency maps (Adebayo et al. 2018): model and data randomization.

Steps of ``model_randomization`` are the leaf modules with parameters (or BatchNorm statistics),
in the order one forward pass runs them. By default each convolution or linear layer is one step
together with the normalisation layers that run right after it; ``group_depth=k`` instead groups
modules by the first ``k`` parts of their dotted names (``group_depth=2`` on a ResNet gives one
step per residual block, like the paper's Inception "phases"). Each module is reset with its own
``reset_parameters()`` under a seeded generator. Every experiment runs on a deep copy of the
model in eval mode; images are float in [0, 1] (models normalise inside).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypedDict

import torch
from torch import Tensor, nn

from explainaug._shared import preserved_model_state, upsample
from explainaug._validation import check_count, check_images, check_labels
from explainaug.evaluate._predict import first_images, model_device
from explainaug.evaluate.similarity import SIMILARITIES, check_similarity_names, compare_maps
from explainaug.explain import Explainer
from explainaug.typing import ExplainerFactory

if TYPE_CHECKING:
    from explainaug.evaluate.report import Job

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _owns_state(module: nn.Module) -> bool:
    """A module with its own parameters or BatchNorm running statistics."""
    if next(module.parameters(recurse=False), None) is not None:
        return True
    return isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats


def forward_order(model: nn.Module, x: Tensor) -> list[str]:
    """Names of the leaf modules with parameters (or BN statistics), in the order forward runs them.

    Modules never called are left out; a module called twice counts at its first call. The
    model's modes and BatchNorm statistics are left as they were.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> forward_order(SmallCNN(num_classes=2, width=4).eval(), torch.rand(1, 3, 16, 16))[:3]
        ['block1.0', 'block1.1', 'block2.0']
    """
    named = [
        (name, module)
        for name, module in model.named_modules()
        if _owns_state(module) and next(module.children(), None) is None
    ]
    order: list[str] = []

    def make_hook(name: str) -> Callable:
        def hook(*_args: object) -> None:
            if name not in order:
                order.append(name)

        return hook

    handles = [module.register_forward_pre_hook(make_hook(name)) for name, module in named]
    try:
        with torch.no_grad(), preserved_model_state(model):
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return order


def group_layers(
    order: Sequence[str], modules: dict[str, nn.Module], group_depth: int | None = None
) -> list[tuple[str, list[str]]]:
    """Group modules (in forward order) into randomization steps: ``[(step name, names)]``.

    ``group_depth=None``: each non-normalisation module starts a step and the normalisation
    layers that follow it join it. ``group_depth=k``: modules sharing the first ``k`` dotted name
    parts form one step, placed where its first module runs.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=2, width=4)
        >>> group_layers(["block1.0", "block1.1", "fc"], dict(model.named_modules()))
        [('block1.0+block1.1', ['block1.0', 'block1.1']), ('fc', ['fc'])]
    """
    groups: list[tuple[str, list[str]]] = []
    if group_depth is None:
        for name in order:
            if groups and isinstance(modules[name], _NORM_TYPES):
                groups[-1][1].append(name)
            else:
                groups.append((name, [name]))
        return [("+".join(names), names) for _, names in groups]
    check_count(group_depth, "group_depth", optional=True)
    index: dict[str, int] = {}
    for name in order:
        key = ".".join(name.split(".")[:group_depth])
        if key not in index:
            index[key] = len(groups)
            groups.append((key, []))
        groups[index[key]][1].append(name)
    return groups


def _reset_seeded(modules: list[nn.Module], seed: int, device: torch.device) -> None:
    """Reset modules with a fixed seed, leaving the global random state untouched."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for module in modules:
            reset = getattr(module, "reset_parameters", None)
            if reset is None:
                raise ValueError(
                    f"{type(module).__name__} has parameters but no reset_parameters(); "
                    "randomization cannot re-initialise it"
                )
            reset()
            if isinstance(module, nn.modules.batchnorm._NormBase):
                module.reset_running_stats()


def sanity_maps(explainer: Explainer, x: Tensor, target: Tensor) -> Tensor:
    """The maps the similarity functions compare, at image resolution (float32).

    As in the sanity-checks code: an input-space attribution (one channel per image channel,
    at image resolution) is the explainer's raw, signed ``attribute`` output, so the no-ABS
    Spearman sees signs (build gradient methods signed, e.g. ``Saliency(model, abs=False)``);
    a class-activation map (fewer channels than the image, or a lower resolution, e.g.
    Grad-CAM's layer map) is ReLU'd, divided by its maximum and resized bilinearly, as PAIR
    saliency's ``GradCam`` that the paper used (whatever the explainer's own ``relu``).

    Example:
        >>> from explainaug.explain import GradCAM
        >>> from explainaug.models import SmallCNN
        >>> cam = GradCAM(SmallCNN(num_classes=3, width=4).eval())
        >>> maps = sanity_maps(cam, torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))
        >>> maps.shape, bool(maps.min() >= 0), bool(maps.amax(dim=(1, 2, 3)).le(1).all())
        (torch.Size([2, 1, 32, 32]), True, True)
    """
    raw = explainer.attribute(x, target)
    if raw.ndim != 4 or raw.shape[0] != x.shape[0]:
        raise ValueError(
            f"the explainer's attribution must have shape [B, C, H, W] with B={x.shape[0]}, "
            f"got {tuple(raw.shape)}"
        )
    raw = raw.float()
    if raw.shape[1] < x.shape[1] or raw.shape[-2:] != x.shape[-2:]:
        cam = raw.sum(dim=1, keepdim=True).relu()
        peak = cam.amax(dim=(2, 3), keepdim=True)
        raw = cam / torch.where(peak > 0, peak, torch.ones_like(peak))
    return upsample(raw, tuple(x.shape[-2:]))


class SimilaritySummary(TypedDict):
    """Mean and std of per-image similarity scores, and how many were undefined (NaN)."""

    mean: float
    std: float
    undefined: int


class SimilarityCurve(TypedDict):
    """One ``SimilaritySummary`` field per randomization step, as lists."""

    mean: list[float]
    std: list[float]
    undefined: list[int]


class _ModelRandomizationRequired(TypedDict):
    mode: str
    n_images: int
    steps: list[str]
    layers: list[list[str]]
    similarity: dict[str, SimilarityCurve]


class ModelRandomizationResult(_ModelRandomizationRequired, total=False):
    """What ``model_randomization`` returns; ``random_map`` with ``include_random_map``."""

    random_map: dict[str, SimilaritySummary]


class _DataRandomizationRequired(TypedDict):
    n_images: int
    similarity: dict[str, SimilaritySummary]


class DataRandomizationResult(_DataRandomizationRequired, total=False):
    """What ``data_randomization`` returns; ``random_map`` with ``include_random_map``."""

    random_map: dict[str, SimilaritySummary]


def summarize(scores: Tensor) -> SimilaritySummary:
    """Mean and standard deviation of per-image scores, skipping undefined (NaN) ones.

    ``undefined`` counts the NaN scores (a constant map has no rank correlation); the mean and
    std are NaN only when every score is undefined.

    Example:
        >>> summarize(torch.tensor([1.0, 0.0, float("nan")]))
        {'mean': 0.5, 'std': 0.5, 'undefined': 1}
    """
    defined = scores[~torch.isnan(scores)].double()
    if defined.numel() == 0:
        return {"mean": math.nan, "std": math.nan, "undefined": int(scores.numel())}
    return {
        "mean": float(defined.mean()),
        "std": float(defined.std(unbiased=False)),
        "undefined": int(scores.numel() - defined.numel()),
    }


def _prepare(
    model: nn.Module, x: Tensor, target: Tensor | None, similarity: Sequence[str] | str
) -> tuple[Tensor, Tensor | None, tuple[str, ...]]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    device = model_device(model)
    x = check_images(x).to(device)
    if target is not None:
        target = check_labels(target, x.shape[0], name="target").to(device=device, dtype=torch.long)
    return x, target, check_similarity_names(similarity)


def _explainer_of(
    model: nn.Module, explainer: ExplainerFactory, x: Tensor, target: Tensor | None
) -> tuple[nn.Module, Explainer, Tensor]:
    """A deep copy of ``model`` in eval mode on ``x``'s device, its explainer, and the classes
    to explain (``target``, else the copy's predictions)."""
    work = copy.deepcopy(model).eval().to(x.device)
    built = explainer(work)
    if target is None:
        with torch.no_grad():
            target = work(x).argmax(dim=1)
    return work, built, target


def _random_control(
    original: Tensor, names: tuple[str, ...], seed: int
) -> dict[str, SimilaritySummary]:
    generator = torch.Generator(device=original.device).manual_seed(seed)
    noise = torch.rand(original.shape, generator=generator, device=original.device)
    return {name: summarize(score) for name, score in compare_maps(original, noise, names).items()}


def model_randomization(
    model: nn.Module,
    explainer: ExplainerFactory,
    x: Tensor,
    target: Tensor | None = None,
    *,
    mode: str = "cascading",
    similarity: Sequence[str] | str = tuple(SIMILARITIES),
    seed: int = 0,
    include_random_map: bool = True,
    group_depth: int | None = None,
) -> ModelRandomizationResult:
    """Cascading or independent model-parameter randomization test.

    Args:
        model: the trained classifier (never modified).
        explainer: builds the explainer of a model (an explainer class or a callable), e.g.
            ``lambda m: GradCAM(m, layer="layer4")``. Build gradient methods signed
            (``Saliency(m, abs=False)``) so that the signed Spearman differs from the ABS one.
        x: images ``[B, C, H, W]`` in [0, 1].
        target: the classes to explain ``[B]`` at every step; ``None``: the original model's
            predictions.
        mode: ``"cascading"`` randomizes layers from the logits down, cumulatively;
            ``"independent"`` randomizes one step at a time, the others trained.
        similarity: names from ``SIMILARITIES``.
        seed: seeds the re-initialisation (each step draws its own seed from it) and the
            random maps.
        include_random_map: also compare the original maps with uniform random maps (a control
            whose rank correlations should be about 0).
        group_depth: how layers are grouped into steps (see the module docstring).

    Returns:
        ``steps`` (top-down), ``layers`` (module names per step), ``similarity`` (one
        mean/std/undefined entry per step) and ``random_map``, as plain Python values.

    Example:
        >>> from explainaug.explain import Saliency
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> result = model_randomization(model, Saliency, torch.rand(2, 3, 32, 32),
        ...                              similarity="spearman_abs")
        >>> result["steps"][0], len(result["similarity"]["spearman_abs"]["mean"])
        ('fc', 4)
    """
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode must be 'cascading' or 'independent', got {mode!r}")
    x, target, names = _prepare(model, x, target, similarity)
    work, built, target = _explainer_of(model, explainer, x, target)
    if getattr(built, "model", work) is not work:
        raise ValueError("explainer(model) must return an explainer of the model it is given")
    device = model_device(work)
    modules = dict(work.named_modules())
    steps = list(reversed(group_layers(forward_order(work, x), modules, group_depth)))
    original = sanity_maps(built, x, target)
    curves: dict[str, SimilarityCurve] = {
        name: {"mean": [], "std": [], "undefined": []} for name in names
    }
    step_seeds = torch.randint(2**62, (len(steps),), generator=torch.Generator().manual_seed(seed))
    for (_, layer_names), step_seed in zip(steps, step_seeds.tolist(), strict=False):
        step_modules = [modules[name] for name in layer_names]
        saved = None
        if mode == "independent":
            saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in step_modules]
        _reset_seeded(step_modules, step_seed, device)
        randomized = sanity_maps(built, x, target)
        for name, score in compare_maps(original, randomized, names).items():
            for key, value in summarize(score).items():
                curves[name][key].append(value)
        if saved is not None:
            for module, state in zip(step_modules, saved, strict=False):
                module.load_state_dict(state)
    result: ModelRandomizationResult = {
        "mode": mode,
        "n_images": int(x.shape[0]),
        "steps": [step for step, _ in steps],
        "layers": [list(layer_names) for _, layer_names in steps],
        "similarity": curves,
    }
    if include_random_map:
        result["random_map"] = _random_control(original, names, seed)
    return result


def data_randomization(
    model_true: nn.Module,
    model_random_labels: nn.Module,
    explainer: ExplainerFactory,
    x: Tensor,
    target: Tensor | None = None,
    *,
    similarity: Sequence[str] | str = tuple(SIMILARITIES),
    include_random_map: bool = True,
    seed: int = 0,
) -> DataRandomizationResult:
    """Data randomization test: maps of a model vs maps of one trained on permuted labels.

    Both models run in eval mode on deep copies (neither is modified) on the same images.
    Arguments as in :func:`model_randomization`; ``model_random_labels`` is the same
    architecture trained on permuted labels (``explainaug.train.train_on_permuted_labels``), and
    ``target=None`` explains each model's own predictions.

    Example:
        >>> from explainaug.explain import Saliency
        >>> from explainaug.models import SmallCNN
        >>> a, b = SmallCNN(num_classes=3, width=4), SmallCNN(num_classes=3, width=4)
        >>> data_randomization(a, b, Saliency, torch.rand(2, 3, 32, 32), similarity="ssim",
        ...                    include_random_map=False)["n_images"]
        2
    """
    x, target, names = _prepare(model_true, x, target, similarity)
    maps = []
    for model in (model_true, model_random_labels):
        if not isinstance(model, nn.Module):
            raise TypeError(f"models must be torch.nn.Module, got {type(model).__name__}")
        _, built, explained = _explainer_of(model, explainer, x, target)
        maps.append(sanity_maps(built, x, explained))
    scores = compare_maps(maps[0], maps[1], names)
    result: DataRandomizationResult = {
        "n_images": int(x.shape[0]),
        "similarity": {name: summarize(score) for name, score in scores.items()},
    }
    if include_random_map:
        result["random_map"] = _random_control(maps[0], names, seed)
    return result


def run_in_report(job: Job) -> dict:
    """The ``randomization`` evaluator of ``evaluate.report``: cascading (or independent)
    model randomization of the signed explainer on the loader's first images."""
    options = job.options
    assert job.signed_explainer is not None
    x = first_images(job.loader, options.randomization_images, model_device(job.model))
    return model_randomization(
        job.model,
        job.signed_explainer,
        x,
        mode=options.randomization_mode,
        similarity=options.similarity,
        seed=options.seed,
    )
