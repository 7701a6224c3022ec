"""Saliency maps as the faithfulness and localization metrics need them: checked, at image
resolution, flattened, and ranked by decreasing saliency (ties at random, as in training)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from explainaug._ranking import tie_broken_ranks
from explainaug._shared import upsample
from explainaug._validation import check_labels, check_maps
from explainaug.explain import Explainer


def check_explainer(explainer: object, model: nn.Module) -> Explainer:
    """Raise unless ``explainer`` is callable and explains ``model`` (when it names a model).

    Example:
        >>> from explainaug.explain import Saliency
        >>> model = torch.nn.Linear(2, 2)
        >>> check_explainer(Saliency(model), model).model is model
        True
    """
    if not callable(explainer):
        raise TypeError(
            f"explainer must be callable (x, target) -> maps, got {type(explainer).__name__}"
        )
    if getattr(explainer, "model", model) is not model:
        raise ValueError(
            "the explainer explains a different model than the one evaluated; "
            "build it from the same model object"
        )
    return explainer


def check_loader_target(target: object) -> str | None:
    """Raise ``ValueError`` unless ``target`` says which class an evaluator explains: None, the
    predicted class (as an explainer's ``target=None``), or ``"label"``, each image's label.

    Example:
        >>> check_loader_target("label")
        'label'
    """
    if target is not None and target != "label":
        raise ValueError(
            f"target must be None (the predicted class) or 'label' (each image's label), "
            f"got {target!r}"
        )
    return target


def explained_classes(target: str | None, logits: Tensor, labels: Tensor) -> Tensor:
    """The class to explain for each image: the model's prediction (``None``) or its label,
    ``[B]`` long.

    Example:
        >>> logits = torch.tensor([[0.0, 2.0], [3.0, 1.0]])
        >>> explained_classes(None, logits, torch.tensor([0, 1])).tolist()
        [1, 0]
    """
    if target is None:
        return logits.argmax(dim=1)
    return check_labels(labels, logits.shape[0], num_classes=logits.shape[1]).long()


def explain_flat(explainer: Explainer, x: Tensor, target: Tensor) -> Tensor:
    """The explainer's maps for ``x`` at image resolution, flattened to ``[B, H*W]`` (float32).

    Raises:
        ValueError: the maps are not ``[B, 1, h, w]`` (or ``[B, h, w]``) for this batch, or hold
            NaN/inf.

    Example:
        >>> from explainaug.explain import Saliency
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
        >>> explain_flat(Saliency(model), torch.rand(3, 3, 2, 2), torch.tensor([0, 1, 0])).shape
        torch.Size([3, 4])
    """
    maps = check_maps(explainer(x, target), x, name="the explainer's maps")
    return upsample(maps.float(), tuple(x.shape[-2:])).flatten(1)


def descending_rank(flat_maps: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Position of each pixel when sorted by decreasing saliency (0 = most salient), ``[B, N]``.

    Ties are broken at random by the rule the augmentations use
    (:func:`explainaug._ranking.tie_broken_ranks`), drawn from ``generator``; metrics pass a
    seeded generator, so they are deterministic and free of positional bias.

    Example:
        >>> descending_rank(torch.tensor([[0.1, 0.9, 0.5, 0.8]])).tolist()
        [[3, 0, 2, 1]]
    """
    return tie_broken_ranks(flat_maps, descending=True, generator=generator)


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (for the metrics' tie-breaking).

    Example:
        >>> seeded_generator(0, torch.device("cpu")).initial_seed()
        0
    """
    return torch.Generator(device=device).manual_seed(seed)
