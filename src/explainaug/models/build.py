"""Models by name, from ``registry.MODELS``: shared by the CLI, the recipes, the demo and
``evaluate``.

Names are the package's own models (``small-cnn``, ``resnet18``, ``resnet50``: CIFAR-style,
``width`` channels in the first stage) or a library model as ``torchvision:NAME`` or
``timm:NAME`` (timm is an optional extra). Library models are randomly initialised (nothing is
downloaded) or load a local state dict (``weights=``); their head is then sized for the class
count, and they keep their own layer names (see :func:`explainaug.models.adapt`).

Example:
    >>> model = build_model("torchvision:resnet18", 5, mean=(0.5,) * 3, std=(0.2,) * 3)
    >>> model(torch.rand(2, 3, 32, 32)).shape, model.model_spec["name"]
    (torch.Size([2, 5]), 'torchvision:resnet18')
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explainaug._validation import check_count
from explainaug.models.adapt import adapt, last_linear, replace_module
from explainaug.models.contrastive import ContrastiveModel
from explainaug.registry import MODELS, check_model_name

__all__ = ["build_model", "rebuild_model"]


def _load_weights(net: nn.Module, path: str | Path, head: str) -> None:
    """Load a local state dict into ``net``; the head may differ (it is replaced afterwards)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a state dict")
    own = net.state_dict()
    state = {
        k: v
        for k, v in state.items()
        if not (k.startswith(f"{head}.") and k in own and own[k].shape != v.shape)
    }
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(f"{head}.")]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not fit {type(net).__name__}: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]} ({len(missing)} and {len(unexpected)} keys)"
        )


def _library_net(name: str) -> nn.Module:
    library, _, inner = name.partition(":")
    if library == "torchvision":
        import torchvision

        try:
            return torchvision.models.get_model(inner, weights=None)
        except ValueError:
            raise ValueError(
                f"unknown torchvision model {inner!r}; see torchvision.models.list_models()"
            ) from None
    try:
        import timm
    except ImportError:
        raise ImportError(f"model {name!r} needs timm: pip install 'explainaug[timm]'") from None
    if not timm.is_model(inner):
        raise ValueError(f"unknown timm model {inner!r}; see timm.list_models()")
    return timm.create_model(inner, pretrained=False)


def build_model(
    name: str,
    num_classes: int | None,
    *,
    width: int = 16,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    weights: str | Path | None = None,
    output: int | str | None = None,
    contrastive: bool = False,
    proj_dim: int = 128,
) -> nn.Module:
    """The model registered as ``name``, normalising inside with ``mean``/``std``.

    Args:
        name: a name from ``registry.model_names()`` (``torchvision:NAME``, ``timm:NAME`` included).
        num_classes: classifier outputs; None returns the encoder's pooled features.
        width: first-stage channels of the package's own models (ignored by library models).
        weights: a local state dict file for a library model (its head may have any size).
        output: index or key of the logits for library models returning a tuple or dict.
        contrastive: wrap the encoder in a :class:`ContrastiveModel` (projection head of
            ``proj_dim`` and a linear probe of ``num_classes``).

    Returns:
        The model; ``model.model_spec`` holds what rebuilds it (``rebuild_model``).

    Example:
        >>> model = build_model("small-cnn", 4, width=4, contrastive=True)
        >>> type(model).__name__, model.classifier.out_features
        ('ContrastiveModel', 4)
    """
    check_model_name(name)
    if contrastive and num_classes is None:
        raise ValueError("a contrastive model needs num_classes (for its linear probe)")
    if num_classes is not None:
        check_count(num_classes, "num_classes")
    if weights is not None and name in MODELS:
        raise ValueError(
            f"weights= is for library models (torchvision:NAME, timm:NAME), not {name!r}"
        )
    outputs = None if contrastive else num_classes
    if name in MODELS:
        model = MODELS[name].load()(outputs, width=width, mean=mean, std=std)
    else:
        net = _library_net(name)
        head = last_linear(net)
        if weights is not None:
            _load_weights(net, weights, head)
        features = net.get_submodule(head).in_features
        new_head = nn.Identity() if outputs is None else nn.Linear(features, outputs)
        replace_module(net, head, new_head)
        model = adapt(net, mean, std, output=output, num_features=features)
    if contrastive:
        model = ContrastiveModel(model, model.num_features, proj_dim, num_classes=num_classes)
    model.model_spec = {
        "name": name,
        "num_classes": num_classes,
        "width": width,
        "output": output,
        "contrastive": contrastive,
        "proj_dim": proj_dim,
    }
    return model


def rebuild_model(spec: dict[str, Any]) -> nn.Module:
    """An untrained model of the architecture ``spec`` describes (``model.model_spec``), with
    placeholder normalisation buffers; load the trained state dict into it.

    Example:
        >>> rebuild_model(build_model("resnet18", 3, width=4).model_spec).fc.out_features
        3
    """
    try:
        options = {k: spec[k] for k in ("width", "output", "contrastive", "proj_dim")}
        name, num_classes = spec["name"], spec["num_classes"]
    except (KeyError, TypeError):
        raise ValueError(f"not a model spec (written by build_model): {spec!r}") from None
    return build_model(name, num_classes, mean=(0.0,) * 3, std=(1.0,) * 3, **options)
