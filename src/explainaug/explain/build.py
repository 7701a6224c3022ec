"""Explainers by name (``registry.EXPLAINERS``): shared by training, the command line, the report
and the recipes.

``build_explainer`` builds any registered explainer with the options given; ``run_explainer``
builds the explainer of a training run, on the run's CAM layer (``explain.layers.cam_layer``)
and with Grad-CAM's ReLU as the run's method trains it (``explain.layers.cam_relu``).

Example:
    >>> from explainaug.models import SmallCNN
    >>> build_explainer("gradcam", SmallCNN(num_classes=4, width=4), check_values=False)
    GradCAM(SmallCNN, layer='block3')
"""

from __future__ import annotations

from torch import nn

from explainaug.explain._base import Explainer
from explainaug.explain.layers import cam_relu
from explainaug.registry import EXPLAINERS


def build_explainer(name: str, model: nn.Module, **options: object) -> Explainer:
    """Build the explainer registered as ``name`` (case-insensitive) for ``model``, with
    ``options`` as its constructor's keyword arguments; an unknown name raises ``ValueError``.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> build_explainer("Saliency", SmallCNN(num_classes=4, width=4), abs=False).abs
        False
    """
    return EXPLAINERS[name].load()(model, **options)


def run_options(name: str, model: nn.Module, cam_layer: str | None) -> dict[str, object]:
    """The options of a run's explainer ``name`` on ``model``: its CAM layer (``cam_layer`` as
    the run names it; None: the model's default) for explainers that take one, and Grad-CAM's
    ReLU by :func:`~explainaug.explain.layers.cam_relu`.

    Example:
        >>> from explainaug.models import ContrastiveModel, SmallCNN
        >>> run_options("gradcam", ContrastiveModel(SmallCNN(None, width=4), 16, 8, 2), "block2")
        {'layer': 'block2', 'relu': False}
    """
    options: dict[str, object] = {}
    if EXPLAINERS[name].takes_layer:
        options["layer"] = cam_layer
    if name.lower() == "gradcam":
        options["relu"] = cam_relu(model)
    return options


def run_explainer(
    name: str, model: nn.Module, cam_layer: str | None = None, **options: object
) -> Explainer:
    """The explainer of a training run: ``name`` with :func:`run_options` (and ``options``).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> run_explainer("gradcam", SmallCNN(num_classes=4, width=4), "block2", check_values=False)
        GradCAM(SmallCNN, layer='block2')
    """
    return build_explainer(name, model, **run_options(name, model, cam_layer), **options)
