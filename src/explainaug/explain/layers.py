"""Which layer a CAM explains: one resolver, :func:`cam_layer`, that every explainer, training
method and command calls.

A layer is given as a module or a dotted name. Without one, the model's own default is used
(``default_cam_layer``, a timm model's last feature module, a wrapper's encoder's default) and
checked by one probe: a default that pools the images to 1x1 gives way to the last layer with a
spatial map. A layer name of a wrapped encoder's own (``"block3"`` of a ``ContrastiveModel``)
is qualified (``"encoder.block3"``), so a backbone's names work on its wrapper.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from contextlib import ExitStack

import torch
from torch import Tensor, nn

from explainaug._shared import eval_mode, is_contrastive, preserved_model_state

LayerSpec = str | nn.Module


def cam_layer(
    model: nn.Module, layer: LayerSpec | None = None, example: Tensor | None = None
) -> str | None:
    """The dotted name of the layer a CAM of ``model`` explains: the one decision, made here.

    Args:
        layer: a module or dotted name (a wrapped encoder's own names work); None: the
            model's default (see :func:`default_layer`).
        example: images like those to explain; with it a default is checked by one probe
            (:func:`last_feature_layer`), which moves off a layer that pools them to 1x1 and
            finds a layer for a model that names none.

    Returns:
        The dotted name; None only when no default is known and no ``example`` was given.

    Example:
        >>> from explainaug.models import ContrastiveModel, SmallCNN
        >>> wrapped = ContrastiveModel(SmallCNN(None, width=4), 16, 8, num_classes=2)
        >>> cam_layer(wrapped), cam_layer(wrapped, "block2")
        ('encoder.block3', 'encoder.block2')
    """
    if layer is not None:
        return resolve_layer(model, _qualified(model, layer))[0]
    name = default_layer(model)
    if example is not None:
        name = last_feature_layer(model, example[:1].detach(), preferred=name)
    return name


def cam_relu(model: nn.Module) -> bool:
    """Whether Grad-CAM clamps a run's maps with ReLU: not for a contrastive model (the official
    ExCon code, in training and in AD/IC, uses Captum's LayerGradCam without ReLU), else yes
    (EDDA, and the classifiers compared with it).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> cam_relu(SmallCNN(num_classes=3, width=4))
        True
    """
    return not is_contrastive(model)


def _qualified(model: nn.Module, layer: LayerSpec) -> LayerSpec:
    """``layer`` as a name of ``model``: ``encoder.``-prefixed when it names a layer of the
    model's ``encoder`` (a ``ContrastiveModel``) and not of the model itself."""
    if not isinstance(layer, str):
        return layer
    modules = dict(model.named_modules())
    encoder = getattr(model, "encoder", None)
    if layer not in modules and isinstance(encoder, nn.Module) and f"encoder.{layer}" in modules:
        return f"encoder.{layer}"
    return layer


def resolve_layer(model: nn.Module, layer: LayerSpec) -> tuple[str, nn.Module]:
    """Find a submodule of ``model`` given as a module or a dotted name (``ValueError``, with
    the closest names, when it is not part of the model).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> resolve_layer(SmallCNN(), "block3")[0]
        'block3'
    """
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise ValueError(f"layer {type(layer).__name__} is not a submodule of the model")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a module or a dotted name, got {type(layer).__name__}")
    if layer not in modules or layer == "":
        names = [name for name in modules if name]
        close = difflib.get_close_matches(layer, names, n=5, cutoff=0.6)
        hint = (
            f"did you mean {', '.join(repr(name) for name in close)}?"
            if close
            else "see model.named_modules() for the names"
        )
        raise ValueError(f"unknown layer {layer!r} in {type(model).__name__}; {hint}")
    return layer, modules[layer]


def default_layer(model: nn.Module) -> str | None:
    """The model's own default CAM layer, or ``None`` when it names none.

    The model's ``default_cam_layer`` is used; a timm model (one with a
    ``feature_info`` list) gives its last feature module, ``feature_info[-1]["module"]``, and for
    a transformer block (one with a ``norm1``) that block's ``norm1``: a class-token head reads the
    block's output only through the class token, so its patch tokens get no gradient
    (pytorch-grad-cam's choice for ViTs). A wrapper with an ``encoder`` (``ContrastiveModel``)
    takes its encoder's default. ``None`` means no default is known without running the
    model: :func:`cam_layer` then probes for one (:func:`last_feature_layer`).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> default_layer(SmallCNN())
        'block3'
    """
    name = getattr(model, "default_cam_layer", None)
    if name is not None:
        return name
    feature_info = getattr(model, "feature_info", None)
    if isinstance(feature_info, list) and feature_info and "module" in feature_info[-1]:
        name = feature_info[-1]["module"]
        block = dict(model.named_modules()).get(name)
        if block is not None and isinstance(getattr(block, "norm1", None), nn.Module):
            return f"{name}.norm1"
        return name
    encoder = getattr(model, "encoder", None)  # a wrapper (ContrastiveModel): its encoder's
    if isinstance(encoder, nn.Module):
        inner = default_layer(encoder)
        if isinstance(inner, str):
            return f"encoder.{inner}"
    return None


def last_feature_layer(model: nn.Module, example: Tensor, preferred: str | None = None) -> str:
    """The last module with a spatial 4-D output before global pooling, found by one forward pass.

    ``preferred`` (a model's default layer) is returned as it is unless it pools ``example``
    down to a 1x1 map.

    Modules are ordered by when their forward pass finishes, so a container (``layer4``) comes
    after its children; global pooling is the last adaptive pooling module to run (a class name
    with ``Adaptive`` and ``Pool``: ``nn.AdaptiveAvgPool2d``, timm's ``SelectAdaptivePool2d``; the
    last, because squeeze-excitation blocks pool inside the network) or parameter-free module
    that reduces a spatial map to 1x1. A 1x1 output (a network that has pooled the image away,
    as torchvision's ResNet-18 at 32 px in ``layer4``) is skipped: its CAM would be one
    constant. The probe runs without gradient, in eval mode (BatchNorm takes one image), and
    leaves the model's state as it was.

    Example:
        >>> import torchvision
        >>> last_feature_layer(torchvision.models.resnet18(), torch.zeros(1, 3, 64, 64))
        'layer4'
    """
    finished: list[tuple[str, bool]] = []  # (name, outputs a spatial 4-D map), finishing order
    pooling_at: list[int] = []
    pooled_away: set[str] = set()  # modules whose output is a 1x1 map of a larger image

    def make_hook(name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            four_d = isinstance(output, Tensor) and output.ndim == 4
            source = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
            squeezes = (
                four_d
                and next(module.parameters(), None) is None
                and source is not None
                and source.ndim == 4
                and source.shape[2] * source.shape[3] > 1
                and output.shape[2] * output.shape[3] == 1
            )
            kind = type(module).__name__
            if ("Adaptive" in kind and "Pool" in kind) or squeezes:
                pooling_at.append(len(finished))
            one_by_one = four_d and output.shape[2] * output.shape[3] == 1
            if one_by_one and example.shape[2:].numel() > 1:
                pooled_away.add(name)
            finished.append((name, four_d and name not in pooled_away))

        return hook

    with ExitStack() as stack:
        for name, module in model.named_modules():
            if name:
                stack.callback(module.register_forward_hook(make_hook(name)).remove)
        with preserved_model_state(model), eval_mode(model), torch.no_grad():
            model(example)
    if preferred is not None and preferred not in pooled_away:
        return preferred
    before = finished[: pooling_at[-1]] if pooling_at else finished
    candidates = [name for name, four_d in before if four_d]
    if not candidates:
        raise ValueError(
            f"found no module with a spatial 4-D output before global pooling in "
            f"{type(model).__name__} for {tuple(example.shape[2:])} images; "
            "pass layer= (a module or dotted name)"
        )
    return candidates[-1]
