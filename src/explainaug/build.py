"""What an :class:`~explainaug.settings.Experiment` describes, built: its data, model and method.

Building a method is a registry lookup plus keywords: the method's class takes the settings it
uses by name (``method_settings``). Shared by ``explainaug train``, ``explainaug evaluate``, the
recipes and the demo.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from explainaug._validation import check_count
from explainaug.data.image_folder import MissingMaskError
from explainaug.data.load import load_dataset
from explainaug.explain import cam_layer
from explainaug.models import build_model as build_registered_model
from explainaug.registry import METHODS, MODELS
from explainaug.settings import Experiment, SettingError
from explainaug.train import Method


def load_split(
    experiment: Experiment, split: str, device: str | torch.device | None = None
) -> Dataset:
    """The experiment's ``"train"`` or ``"test"`` split; images in [0, 1], statistics of the
    train split. ``device`` is where the data will live: image folders too large for it stay on
    disk.

    Raises:
        FileNotFoundError: the data are not in the data folder (``--data``, named).

    Example:
        >>> len(load_split(Experiment(train_size=8, image_size=16), "test"))
        2
    """
    try:
        return load_dataset(
            experiment.dataset,
            split,
            root=experiment.root,
            size=experiment.image_size,
            seed=experiment.seed,
            train_size=experiment.train_size,
            download=experiment.download,
            device=device,
            cue_correlation=experiment.cue_correlation,
            masks=experiment.masks,
            cue_masks=experiment.cue_masks,
        )
    except MissingMaskError as error:  # named by the flag of the folder that lacks the mask
        named = error.masks_root == Path(experiment.masks or "")
        flag = "--masks" if named else "--cue-masks"
        raise FileNotFoundError(f"{flag} {error.masks_root}: {error}") from None
    except FileNotFoundError as error:
        if experiment.root is None:
            raise
        raise FileNotFoundError(f"--data {experiment.root}: {error}") from None


def load_shortcut_datasets(
    experiment: Experiment, device: str | torch.device | None = None
) -> tuple[Dataset, Dataset]:
    """The cue-aligned and cue-conflicting test sets of a ``shapes`` experiment (same images,
    cues of the image's class vs of another class), for ``explainaug.evaluate.shortcut``.

    Example:
        >>> aligned, conflicting = load_shortcut_datasets(Experiment(train_size=8, image_size=16))
        >>> len(aligned), bool((aligned.images != conflicting.images).any())
        (2, True)
    """
    if experiment.dataset != "shapes":
        raise ValueError(
            f"the shortcut evaluation needs the shapes dataset (its cue testbed), "
            f"got dataset {experiment.dataset!r}"
        )
    return tuple(  # type: ignore[return-value]
        load_split(dataclasses.replace(experiment, cue_correlation=p), "test", device)
        for p in (1.0, 0.0)
    )


def method_settings(method: type, experiment: Experiment) -> dict[str, Any]:
    """The settings of ``experiment`` that the method class ``method`` takes, by keyword.

    Example:
        >>> from explainaug.train import EDDA
        >>> sorted(method_settings(EDDA, Experiment()))[:3]
        ['augment', 'cam_layer', 'explain_start']
    """
    names = {field.name for field in dataclasses.fields(Experiment)}
    parameters = inspect.signature(method).parameters
    return {name: getattr(experiment, name) for name in parameters if name in names}


def build_method(experiment: Experiment) -> Method:
    """The training method of ``experiment``: ``registry.METHODS`` plus its settings.

    Example:
        >>> build_method(Experiment(method="edda", occlusion_ratio=0.3))
        EDDA(explain_warmup_epochs=0, occlusion_ratio=0.3, loss=EDDALoss(salient_target='uniform', nonsalient_weight=1.0, salient_weight=1.0))
    """
    method = METHODS[experiment.method].load()
    built = method(**method_settings(method, experiment))
    if not isinstance(built, Method):
        raise TypeError(
            f"method {experiment.method!r} built a {type(built).__name__}, not an "
            "explainaug.train.Method"
        )
    return built


def build_model(
    experiment: Experiment,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    extra_logits: int = 0,
) -> nn.Module:
    """The backbone (normalising with ``mean``/``std`` inside), wrapped in a ``ContrastiveModel``
    for contrastive methods, with ``num_classes + extra_logits`` outputs (EDDA's "background"
    logit is the last). The run's CAM layer (``cam_layer``) is checked against it.

    Raises:
        SettingError: ``cam_layer`` names no layer of the model, ``weights`` no file or is
            given for one of the package's own models.

    Example:
        >>> model = build_model(Experiment(method="supcon", width=4), 4, (0.5,) * 3, (0.2,) * 3)
        >>> type(model).__name__
        'ContrastiveModel'
    """
    if experiment.weights is not None:
        if experiment.model in MODELS:
            raise SettingError(
                "weights",
                f"is for library models (torchvision:NAME, timm:NAME), not {{model}} "
                f"{experiment.model}",
            )
        if not Path(experiment.weights).is_file():
            raise SettingError("weights", f"names no file: {experiment.weights}")
    output = experiment.model_output
    model = build_registered_model(
        experiment.model,
        num_classes + extra_logits,
        width=experiment.width,
        mean=mean,
        std=std,
        weights=experiment.weights,
        output=int(output) if output is not None and output.isdigit() else output,
        contrastive=experiment.contrastive,
    )
    if experiment.cam_layer is not None:
        try:
            cam_layer(model, experiment.cam_layer)
        except ValueError as error:
            raise SettingError("cam_layer", f"{experiment.cam_layer!r}: {error}") from None
    return model


def real_class_logits(model: nn.Module, num_classes: int) -> nn.Module:
    """Make ``model(x)`` return only its first ``num_classes`` logits; return ``model``.

    A model trained with EDDA's background class has ``K + 1`` outputs, the last being
    "background". After training, ``run`` and ``load_run`` register this forward hook, so
    accuracy, calibration, robustness and explanations (targets and predicted classes) see the
    ``K`` real classes only; the weights (and checkpoints) keep the background row.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = real_class_logits(SmallCNN(num_classes=5, width=4), 4)
        >>> model(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 4])
    """
    check_count(num_classes, "num_classes")
    model.register_forward_hook(functools.partial(_first_logits, num_classes=num_classes))
    return model


def _first_logits(module: nn.Module, args: Any, logits: Tensor, num_classes: int) -> Tensor:
    return logits[:, :num_classes]
