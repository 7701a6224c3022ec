"""Explainers by name, from ``catalog.EXPLAINERS``: shared by training, the CLI, the report and
the recipes.

A name maps to a factory ``(model, **options) -> Explainer``. Options are passed through to the
explainer's constructor (``layer=``, ``check_values=``, ...); SmoothGrad wraps a plain gradient.

Example:
    >>> from explainaug.models import SmallCNN
    >>> build_explainer("gradcam", SmallCNN(num_classes=4, width=4), check_values=False)
    GradCAM(SmallCNN, layer='block3')
    >>> "saliency" in explainer_names()
    True
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from explainaug import catalog
from explainaug.catalog import explainer_names, resolve
from explainaug.explain._base import Explainer
from explainaug.explain.gradient import Saliency
from explainaug.explain.smoothgrad import SmoothGrad

__all__ = [
    "build_explainer",
    "explainer_factory",
    "explainer_names",
    "smoothgrad",
]

ExplainerFactory = Callable[..., Explainer]


def smoothgrad(model: nn.Module, **options: object) -> Explainer:
    """SmoothGrad of a plain gradient (``abs=`` and ``check_values=`` go to the gradient too).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> smoothgrad(SmallCNN(num_classes=4, width=4), nt_samples=4).nt_samples
        4
    """
    check_values = bool(options.pop("check_values", True))
    gradient = Saliency(model, abs=bool(options.pop("abs", True)), check_values=check_values)
    return SmoothGrad(gradient, check_values=check_values, **options)


def explainer_factory(name: str) -> ExplainerFactory:
    """The factory registered as ``name`` (case-insensitive) in ``catalog.EXPLAINERS``.

    Raises:
        ValueError: unknown name (the message lists the known ones).

    Example:
        >>> explainer_factory("GradCAM").__name__
        'GradCAM'
    """
    if not isinstance(name, str):
        raise TypeError(f"explainer name must be a string, got {type(name).__name__}")
    reference = catalog.EXPLAINERS.get(name.lower())
    if reference is None:
        raise ValueError(
            f"unknown explainer {name!r}; choose one of {', '.join(explainer_names())}"
        )
    return resolve(reference)


def build_explainer(name: str, model: nn.Module, **options: object) -> Explainer:
    """Build the explainer registered as ``name`` (case-insensitive) for ``model``.

    Args:
        name: a name from :func:`explainer_names`.
        model: the classifier to explain.
        **options: constructor arguments of that explainer.

    Raises:
        ValueError: unknown name (the message lists the known ones).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> build_explainer("Saliency", SmallCNN(num_classes=4, width=4), abs=False).abs
        False
    """
    return explainer_factory(name)(model, **options)
