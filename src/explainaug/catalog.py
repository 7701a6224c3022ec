"""Every name a user chooses from, and where each lives: importable without torch.

Methods, datasets, models, explainers, evaluators, EDDA's salient targets and the linear-head
protocols are named here once. ``explainaug train --help`` and :class:`~explainaug.settings.Experiment`
read the names without importing torch; the registries (``explain.registry``,
``data.registry``, ``models.registry``) import an entry's code only when it is built. Add a
method, dataset or model here and every user of names sees it.

Example:
    >>> explainer_names()[:2]
    ('saliency', 'inputxgradient')
    >>> dataset_names(needs_root=False)
    ('shapes', 'digits')
    >>> resolve(EXPLAINERS["gradcam"]).__name__
    'GradCAM'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

METHODS = ("ce", "supcon", "excon", "edda", "random-occlusion")
CONTRASTIVE_METHODS = ("supcon", "excon")

SALIENT_TARGETS = ("uniform", "smooth", "background", "hinge", "label")
"""EDDA's targets for salient occlusions (see ``losses.EDDALoss``)."""

CONTROL_TARGETS = ("label", "edda")
"""Targets of the random-occlusion control's occluded views (see ``Experiment``)."""

LINEAR_HEADS = ("alternating", "online")
"""How SupCon/ExCon train their linear head (see ``train.SupCon``)."""

EXPLAINERS: dict[str, str] = {
    "saliency": "explainaug.explain.gradient:Saliency",
    "inputxgradient": "explainaug.explain.gradient:InputXGradient",
    "integratedgradients": "explainaug.explain.integrated_gradients:IntegratedGradients",
    "smoothgrad": "explainaug.explain.registry:smoothgrad",
    "guidedbackprop": "explainaug.explain.guided_backprop:GuidedBackprop",
    "gradcam": "explainaug.explain.gradcam:GradCAM",
    "guidedgradcam": "explainaug.explain.guided_gradcam:GuidedGradCAM",
    "integratedgradcam": "explainaug.explain.integrated_gradcam:IntegratedGradCAM",
    "sise": "explainaug.explain.sise:SISE",
    "adasise": "explainaug.explain.sise:AdaSISE",
    "gradcamplusplus": "explainaug.explain.gradcam:GradCAMPlusPlus",
    "xgradcam": "explainaug.explain.gradcam:XGradCAM",
    "hirescam": "explainaug.explain.gradcam:HiResCAM",
    "layercam": "explainaug.explain.gradcam:LayerCAM",
    "eigencam": "explainaug.explain.eigencam:EigenCAM",
    "scorecam": "explainaug.explain.scorecam:ScoreCAM",
    "rise": "explainaug.explain.rise:RISE",
    "occlusion": "explainaug.explain.occlusion:Occlusion",
}
"""Lower-case explainer name -> its factory ``(model, **options) -> Explainer``."""

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
"""Explainers whose constructor takes a CAM layer (``layer=``; SISE takes ``layers=``)."""

SIGNED_OPTIONS: dict[str, dict[str, object]] = {
    "saliency": {"abs": False},
    "smoothgrad": {"abs": False},
}
"""Options that make a method's ``attribute`` signed (Adebayo et al.'s no-ABS maps, e.g. the
signed gradient); methods not listed are signed (or non-negative) by construction."""


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset.

    Attributes:
        load: where ``load(split, **options) -> Dataset`` lives, for ``split`` in
            ``("train", "test")`` (see ``data.registry.load_dataset``).
        needs_root: whether the dataset reads a data folder (``root``).
        summary: one line for ``--help`` and error messages.
    """

    load: str
    needs_root: bool
    summary: str


DATASETS: dict[str, DatasetEntry] = {
    "shapes": DatasetEntry(
        "explainaug.data.registry:load_shapes",
        False,
        "synthetic shapes with object masks (shipped)",
    ),
    "digits": DatasetEntry(
        "explainaug.data.registry:load_digits",
        False,
        "scikit-learn's 8x8 digits, upscaled (shipped)",
    ),
    "cifar100": DatasetEntry(
        "explainaug.data.registry:load_cifar100", True, "CIFAR-100 in DIR/cifar-100-python"
    ),
    "tiny-imagenet": DatasetEntry(
        "explainaug.data.registry:load_tiny_imagenet",
        True,
        "Tiny ImageNet in DIR/tiny-imagenet-200",
    ),
    "folder": DatasetEntry(
        "explainaug.data.registry:load_folder",
        True,
        "your images: DIR/train/<class>/*, DIR/val/<class>/* (optional)",
    ),
}

MODELS: dict[str, str] = {
    "small-cnn": "explainaug.models.small_cnn:SmallCNN",
    "resnet18": "explainaug.models.resnet:resnet18",
    "resnet50": "explainaug.models.resnet:resnet50",
}
"""The package's own models -> factory ``(num_classes or None, width=, mean=, std=)``."""

LIBRARIES = ("torchvision", "timm")
"""Prefixes of library models: ``torchvision:NAME``, ``timm:NAME``."""

EVALUATORS = (
    "accuracy",
    "calibration",
    "robustness",
    "randomization",
    "faithfulness",
    "localization",
)
"""What ``evaluate.report`` runs by default."""

OPTIONAL_EVALUATORS = ("shortcut",)
"""Evaluators run only when named: they need data of their own (``shortcut``: cued shapes)."""


def explainer_names() -> tuple[str, ...]:
    """The registered explainer names, in registration order.

    Example:
        >>> "gradcam" in explainer_names()
        True
    """
    return tuple(EXPLAINERS)


def dataset_names(*, needs_root: bool | None = None) -> tuple[str, ...]:
    """The registered dataset names (only those that need, or do not need, a data folder if given).

    Example:
        >>> dataset_names()
        ('shapes', 'digits', 'cifar100', 'tiny-imagenet', 'folder')
    """
    return tuple(
        name
        for name, entry in DATASETS.items()
        if needs_root is None or entry.needs_root == needs_root
    )


def model_names() -> tuple[str, ...]:
    """The package's model names, then the library patterns.

    Example:
        >>> model_names()
        ('small-cnn', 'resnet18', 'resnet50', 'torchvision:NAME', 'timm:NAME')
    """
    return (*MODELS, *(f"{library}:NAME" for library in LIBRARIES))


def check_model_name(name: str) -> str:
    """Return ``name`` if it names a model (library names are checked when built).

    Example:
        >>> check_model_name("timm:resnet18")
        'timm:resnet18'
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    library, sep, inner = name.partition(":")
    if name in MODELS or (sep and library in LIBRARIES and inner):
        return name
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(model_names())}")


def resolve(reference: str) -> Any:
    """The object a ``"package.module:attribute"`` reference of this catalog names.

    Example:
        >>> resolve("explainaug.catalog:model_names")()[0]
        'small-cnn'
    """
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)
