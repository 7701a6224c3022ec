"""Explainers by name: the one table shared by training, the CLI, the report and the recipes.

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

from explainaug.explain._base import Explainer
from explainaug.explain.eigencam import EigenCAM
from explainaug.explain.gradcam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM
from explainaug.explain.gradient import InputXGradient, Saliency
from explainaug.explain.guided_backprop import GuidedBackprop
from explainaug.explain.guided_gradcam import GuidedGradCAM
from explainaug.explain.integrated_gradcam import IntegratedGradCAM
from explainaug.explain.integrated_gradients import IntegratedGradients
from explainaug.explain.occlusion import Occlusion
from explainaug.explain.rise import RISE
from explainaug.explain.scorecam import ScoreCAM
from explainaug.explain.sise import SISE, AdaSISE
from explainaug.explain.smoothgrad import SmoothGrad

ExplainerFactory = Callable[..., Explainer]


def _smoothgrad(model: nn.Module, **options: object) -> Explainer:
    check_values = bool(options.pop("check_values", True))
    gradient = Saliency(model, abs=bool(options.pop("abs", True)), check_values=check_values)
    return SmoothGrad(gradient, check_values=check_values, **options)


# Options that make a method's ``attribute`` signed (Adebayo et al.'s no-ABS maps, e.g. the
# signed gradient); methods not listed are signed (or non-negative) by construction.
SIGNED_OPTIONS: dict[str, dict[str, object]] = {
    "saliency": {"abs": False},
    "smoothgrad": {"abs": False},
}


EXPLAINERS: dict[str, ExplainerFactory] = {
    "saliency": Saliency,
    "inputxgradient": InputXGradient,
    "integratedgradients": IntegratedGradients,
    "smoothgrad": _smoothgrad,
    "guidedbackprop": GuidedBackprop,
    "gradcam": GradCAM,
    "guidedgradcam": GuidedGradCAM,
    "integratedgradcam": IntegratedGradCAM,
    "sise": SISE,
    "adasise": AdaSISE,
    "gradcamplusplus": GradCAMPlusPlus,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "layercam": LayerCAM,
    "eigencam": EigenCAM,
    "scorecam": ScoreCAM,
    "rise": RISE,
    "occlusion": Occlusion,
}
"""Lower-case name -> factory. Add a method here and every user of names sees it."""

# Methods whose constructor takes a CAM layer (``layer=`` or, for SISE, ``layers=``).
LAYER_EXPLAINERS = (
    "gradcam",
    "guidedgradcam",
    "integratedgradcam",
    "gradcamplusplus",
    "xgradcam",
    "hirescam",
    "layercam",
    "eigencam",
    "scorecam",
)


def explainer_names() -> tuple[str, ...]:
    """The registered names, in registration order.

    Example:
        >>> explainer_names()[:2]
        ('saliency', 'inputxgradient')
    """
    return tuple(EXPLAINERS)


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
    if not isinstance(name, str):
        raise TypeError(f"explainer name must be a string, got {type(name).__name__}")
    factory = EXPLAINERS.get(name.lower())
    if factory is None:
        raise ValueError(f"unknown explainer {name!r}; choose one of {', '.join(EXPLAINERS)}")
    return factory(model, **options)
