"""The settings of a training run (:class:`Experiment`) and their command-line flags.

Importable without torch, so that ``explainaug train --help`` and the recipes' ``--help`` start
at once; ``explainaug.experiment`` builds and runs what the settings describe.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_experiment_arguments(parser, Experiment(method="edda"))
    >>> experiment_from_args(parser.parse_args(["--epochs", "3"])).epochs
    3
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import re
from dataclasses import dataclass

from explainaug.catalog import (
    CONTRASTIVE_METHODS,
    CONTROL_TARGETS,
    DATASETS,
    LINEAR_HEADS,
    METHODS,
    SALIENT_TARGETS,
    check_model_name,
    dataset_names,
    explainer_names,
    model_names,
)


@dataclass
class Experiment:
    """Everything that defines a training run.

    Attributes:
        method: ``ce`` (cross-entropy), ``supcon``, ``excon``, ``edda`` or
            ``random-occlusion`` (EDDA's control: the same occlusions at random places).
        dataset: ``shapes`` and ``digits`` ship with the package; ``cifar100``,
            ``tiny-imagenet`` and ``folder`` (your images in ImageFolder layout) read their
            files from ``data_root``.
        data_root: folder holding ``cifar-100-python``, ``tiny-imagenet-200`` or, for
            ``folder``, ``train/<class>/*`` (and optionally ``val/<class>/*``).
        download: download CIFAR-100 into ``data_root`` when missing.
        model: ``small-cnn``, ``resnet18``, ``resnet50``, ``torchvision:NAME`` or
            ``timm:NAME`` (randomly initialised, or from ``weights``).
        weights: a local state dict for a ``torchvision:``/``timm:`` model (any head size).
        model_output: for a library model that returns several outputs (a tuple or dict, as
            GoogLeNet in train mode), the index (``0``) or key of its logits.
        width: channels of the model's first stage (64 for the papers' ResNets).
        epochs: training epochs.
        batch_size: images per optimisation step, the global batch: under ``torchrun`` each of
            N processes takes ``batch_size / N`` (it must divide evenly), so a run means the
            same on any number of GPUs (the official 256 on CIFAR-100 and 128 on Tiny ImageNet).
        lr: base learning rate (cosine schedule down to lr * 1e-3); None takes 0.5 for the
            contrastive methods (SupCon/ExCon recipe) and 0.1 for the others.
        weight_decay: SGD weight decay.
        lr_warmup_epochs: epochs of linear learning-rate warm-up.
        temperature: contrastive temperature (SupCon, ExCon).
        base_temperature: the contrastive loss is scaled by ``temperature`` /
            ``base_temperature``; 0.07 as SupContrast and the official ExCon code (x1.43 at
            temperature 0.1). Make it equal to ``temperature`` for scale 1
            (pytorch-metric-learning's convention, this package's default before the reference
            scale).
        gather_distributed: under ``torchrun``, SupCon/ExCon contrast each anchor against the
            whole global batch (every process's rows); False contrasts within each process.
        view_min_scale: smallest crop area of the contrastive views (SupContrast: 0.2).
        explain_warmup_epochs: epochs before ExCon/EDDA start using explanations. The official
            ExCon loop masks from its ``exp_epochs``-th 1-based epoch, so the official code's
            --exp_epochs 50 is 49 here (the CIFAR-100 recipe's value).
        explainer: the explainer ExCon/EDDA train with (Grad-CAM, as both papers); any
            explainer name of the package.
        cam_layer: the backbone's CAM layer (dotted name), which ExCon/EDDA train with and
            ``explainaug evaluate`` explains with, for every method; None (``none`` on the
            command line) = the model's default, its last stage, or the last layer with a spatial map where the last stage
            pools the images to 1x1.
        occlusion_ratio: fraction of pixels EDDA and its random-occlusion control occlude.
        salient_target: EDDA's target for views whose salient pixels are occluded (their
            confidence should drop): ``uniform`` (maximum entropy), ``smooth`` (a smoothed
            label), ``background`` (an extra class), ``hinge`` (below the clean confidence by a
            margin) or ``label`` (no opposing target). With ``background`` the model trains
            ``K + 1`` logits (the last is "background"); after training it answers with the
            ``K`` real classes only, so every evaluation ignores the extra logit.
        control_targets: targets of the random-occlusion control's two occluded views:
            ``label`` (both keep the label: a plain occlusion augmentation, the fair control)
            or ``edda`` (the ablation with EDDA's opposing targets: the second view gets
            ``salient_target``, although both views are identically distributed).
        linear_head: how the contrastive methods (SupCon, ExCon) train their linear head:
            ``alternating`` (the official SupContrast/ExCon loop: after every contrastive
            epoch, one cross-entropy epoch of the head on detached features; that head is
            ExCon's probe) or ``online`` (a probe trained in every contrastive step on the
            detached features of all views, masked ones included).
        head_augment: random resized crop (scale 0.2-1) and flip of the head epoch's images, as
            the official classifier loader on CIFAR-100 (the Tiny ImageNet recipe turns it
            off, as the official code).
        linear_epochs: epochs of a final linear evaluation of contrastive encoders (a fresh
            linear classifier on frozen features of the un-augmented training images replaces
            the trained head); 0 keeps the head.
        linear_lr: learning rate of that linear evaluation (cosine schedule).
        report_best_epoch: also test after every epoch and report the best test accuracy over
            epochs (printed, and in results.json as best_test_accuracy_over_epochs), as the
            official scripts do. That selects the epoch on the test set (optimistic); the test
            accuracy reported first stays the final epoch's.
        augment: random crop (padding 4) and flip for the classification methods.
        amp: mixed precision: ``auto`` is bf16 on CUDA (fp16 where bf16 is unsupported) and
            full precision on the CPU; ``bf16`` and ``fp16`` force a type on CUDA; ``none``
            (None in Python) is full precision.
        seed: seed of weights, data order and augmentations.
        tensorboard: also write TensorBoard events (needs the tensorboard extra:
            pip install 'explainaug[tensorboard]'); every run writes metrics.csv and
            results.json (the final test accuracy).
        train_size: shapes only: images of the synthetic ``shapes`` training set (its test set
            is a quarter); other datasets use all their images.
        image_size: side of the ``shapes`` images; ``folder`` images are resized and
            center-cropped to it.
        cue_correlation: None, or plant the shortcut cue of ``shapes`` in both splits: the
            probability in [0, 1] that an image's cue shows its own class (see ``shapes``).

    The descriptions are the command's help too: a field in double backticks reads as its
    flag there (``data_root`` as ``--data``).

    Example:
        >>> Experiment(method="edda", epochs=2).validate().method
        'edda'
    """

    method: str = "ce"
    dataset: str = "shapes"
    data_root: str | None = None
    download: bool = False
    model: str = "small-cnn"
    weights: str | None = None
    model_output: str | None = None
    width: int = 16
    epochs: int = 10
    batch_size: int = 128
    lr: float | None = None
    weight_decay: float = 5e-4
    lr_warmup_epochs: int = 0
    temperature: float = 0.1
    base_temperature: float = 0.07
    gather_distributed: bool = True
    view_min_scale: float = 0.2
    explain_warmup_epochs: int = 0
    explainer: str = "gradcam"
    cam_layer: str | None = None
    occlusion_ratio: float = 0.2
    salient_target: str = "uniform"
    control_targets: str = "label"
    linear_head: str = "alternating"
    head_augment: bool = True
    linear_epochs: int = 0
    linear_lr: float = 1.0
    report_best_epoch: bool = False
    augment: bool = True
    amp: str | None = "auto"
    seed: int = 0
    tensorboard: bool = False
    train_size: int = 2000
    image_size: int = 32
    cue_correlation: float | None = None

    def validate(self) -> Experiment:
        """Check the settings; return ``self``. Raises ``ValueError`` naming the bad field."""
        # imported here: _validation needs torch, which --help must not import
        from explainaug._validation import (
            check_count,
            check_fraction,
            check_interval,
            check_positive,
        )

        for field, allowed in (
            ("method", METHODS),
            ("dataset", dataset_names()),
            ("explainer", explainer_names()),
            ("linear_head", LINEAR_HEADS),
            ("control_targets", CONTROL_TARGETS),
        ):
            if getattr(self, field) not in allowed:
                raise ValueError(
                    f"unknown {field} {getattr(self, field)!r}; choose one of {allowed}"
                )
        check_model_name(self.model)
        if DATASETS[self.dataset].needs_root and not self.data_root:
            raise ValueError(
                f"dataset {self.dataset!r} needs a data folder (--data): "
                f"{DATASETS[self.dataset].summary}"
            )
        for field in ("width", "epochs", "batch_size", "train_size", "image_size"):
            check_count(getattr(self, field), field)
        check_count(
            self.explain_warmup_epochs, "explain_warmup_epochs", minimum=0, maximum=self.epochs
        )
        if self.lr is not None:
            check_positive(self.lr, "lr")
        if not 0 <= self.weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must lie in [0, 2**32 - 1], got {self.seed}")
        check_count(self.linear_epochs, "linear_epochs", minimum=0)
        check_positive(self.linear_lr, "linear_lr")
        check_positive(self.temperature, "temperature")
        check_positive(self.base_temperature, "base_temperature")
        check_interval(self.view_min_scale, "view_min_scale", 0, 1, include_low=False)
        check_fraction(self.occlusion_ratio, "occlusion_ratio")
        if self.cue_correlation is not None:
            if self.dataset != "shapes":
                raise ValueError(
                    f"cue_correlation needs the shapes dataset, got dataset {self.dataset!r}"
                )
            check_fraction(self.cue_correlation, "cue_correlation", closed=True)
        return self

    @property
    def learning_rate(self) -> float:
        """``lr``, or the method's default when ``lr`` is None."""
        if self.lr is not None:
            return self.lr
        return 0.5 if self.contrastive else 0.1

    @property
    def contrastive(self) -> bool:
        """True for methods that train a ``ContrastiveModel`` (SupCon, ExCon)."""
        return self.method in CONTRASTIVE_METHODS


ARGUMENT_HELP = {
    "batch_size": "the global batch: images per step over all processes, split evenly under "
    "torchrun, so a run means the same on any number of GPUs (default: %(default)s)",
    "gather_distributed": "under torchrun, SupCon/ExCon contrast each anchor against the whole "
    "global batch, as on one GPU (default); --no-gather-distributed contrasts within each "
    "process's share",
}


def add_experiment_arguments(parser: argparse.ArgumentParser, defaults: Experiment) -> None:
    """Add one ``--option`` per ``Experiment`` field, with ``defaults`` as default values and the
    field's description (from the ``Experiment`` docstring) as help."""
    helps = {**field_help(), **ARGUMENT_HELP}
    choices = {
        "method": METHODS,
        "dataset": dataset_names(),
        "salient_target": SALIENT_TARGETS,
        "explainer": explainer_names(),
        "linear_head": LINEAR_HEADS,
        "control_targets": CONTROL_TARGETS,
    }
    for field in dataclasses.fields(Experiment):
        flag = field_flag(field.name)
        default = getattr(defaults, field.name)
        if field.name == "data_root":
            parser.add_argument(
                flag,
                dest="data_root",
                default=default,
                help="dataset folder (cifar100, tiny-imagenet, folder: DIR/train/<class>/*)",
            )
        elif isinstance(default, bool):
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=default,
                help=helps.get(field.name),
            )
        elif field.name == "amp":
            parser.add_argument(
                flag,
                default=default or "none",
                choices=("auto", "bf16", "fp16", "none"),
                help=helps.get(field.name),
            )
        elif field.name == "model":
            parser.add_argument(
                flag,
                default=default,
                help=f"one of {', '.join(model_names())} (library models start from random "
                "weights, or from --weights)",
            )
        elif field.name == "weights":
            parser.add_argument(
                flag, default=default, help="local state dict file for a torchvision:/timm: model"
            )
        elif field.name == "lr":
            parser.add_argument(
                flag,
                default=default,
                type=float,
                help="base learning rate (None: 0.5 contrastive, 0.1 otherwise)",
            )
        elif field.name == "cue_correlation":
            parser.add_argument(
                flag,
                default=default,
                type=float,
                help="shapes only: plant a class cue, aligned with this probability (default: none)",
            )
        else:
            kind = {int: int, float: float}.get(type(default), str)
            if kind is str and "None" in str(field.type):
                kind = optional_text  # "none" gives the field's None back (its documented meaning)
            parser.add_argument(
                flag,
                default=default,
                type=kind,
                choices=choices.get(field.name),
                help=helps.get(field.name),
            )


def optional_text(value: str) -> str | None:
    """A command-line value of an optional text setting: ``none``, ``None`` or empty is None.

    Example:
        >>> optional_text("none"), optional_text("layer3")
        (None, 'layer3')
    """
    return None if value in ("", "none", "None") else value


def field_flag(name: str) -> str:
    """The command-line flag of the ``Experiment`` field ``name``.

    Example:
        >>> field_flag("batch_size"), field_flag("data_root")
        ('--batch-size', '--data')
    """
    return "--data" if name == "data_root" else "--" + name.replace("_", "-")


def field_help() -> dict[str, str]:
    """Each ``Experiment`` field's description, one line, from the class docstring, as help
    text: markup removed, another field named in double backticks read as its flag.

    Example:
        >>> field_help()["epochs"]
        'training epochs.'
        >>> field_help()["download"]
        'download CIFAR-100 into --data when missing.'
    """
    section = inspect.cleandoc(Experiment.__doc__ or "").split("Attributes:\n", 1)[-1]
    helps: dict[str, str] = {}
    name = None
    for line in section.split("\n\n", 1)[0].splitlines():
        entry = re.fullmatch(r"    (\w+): (.*)", line)
        if entry:
            name = entry[1]
            helps[name] = entry[2]
        elif name is not None:
            helps[name] += " " + line.strip()
    fields = {field.name for field in dataclasses.fields(Experiment)}

    def as_flag(literal: re.Match[str]) -> str:
        return field_flag(literal[1]) if literal[1] in fields else literal[1]

    return {
        key: re.sub(r"``([^`]+)``", as_flag, text).replace("%", "%%") for key, text in helps.items()
    }


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    """Collect the ``Experiment`` fields from parsed arguments."""
    settings = {f.name: getattr(args, f.name) for f in dataclasses.fields(Experiment)}
    settings["amp"] = None if settings["amp"] == "none" else settings["amp"]
    return Experiment(**settings)
