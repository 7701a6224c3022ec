"""The settings of a training run: :class:`Experiment`, one declaration per setting.

Each field is declared once with :func:`setting`: its default, help text, allowed values,
bounds and command-line flag. ``Experiment.validate`` checks every field against its
declaration and raises :class:`SettingError` naming the field; the command line builds its
flags from the same declarations and names the flag instead. Importable without torch, so that
``explainaug train --help`` and the recipes' ``--help`` start at once.

Example:
    >>> Experiment(method="edda", epochs=2).validate().method
    'edda'
    >>> Experiment(amp="fp8").validate()
    Traceback (most recent call last):
    ...
    explainaug.settings.SettingError: amp must be one of auto, bf16, fp16, none, got 'fp8'
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from explainaug.registry import DATASETS, EXPLAINERS, METHODS, check_model_name, model_names

SALIENT_TARGETS = ("uniform", "smooth", "background", "hinge", "label")
"""EDDA's targets for salient occlusions (see ``losses.EDDALoss``)."""

CONTROL_TARGETS = ("label", "edda")
"""Targets of the random-occlusion control's occluded views."""

LINEAR_HEADS = ("alternating", "online")
"""How SupCon/ExCon train their linear head (see ``train.SupCon``)."""

ANNOTATIONS = ("cue", "object", "previous", "pixels")
"""What the mask-based methods (RRR, RRR-G, HINT, CDEP) learn from (see
``train.methods.annotation.Annotation``): the cue masks (the cue must not matter), the
object masks (only the object should matter), the largest input gradients of previous runs
(RRR's find-another-explanation, no annotation), or single random pixels (CDEP's prior that no
one pixel may decide the class, no annotation; CDEP only)."""

PIXEL_DRAWS = ("batch", "image")
"""How CDEP's single-pixel prior draws its pixels: one set per batch (official) or per image."""

EXPLAIN_STARTS = ("epoch", "plateau")
"""When ExCon/EDDA start using explanations (see ``train.methods.base.ExplanationStart``)."""

AMP_MODES = ("auto", "bf16", "fp16", None)
"""Mixed-precision modes (None: full precision)."""

Choices = Sequence[Any] | Callable[[], Sequence[Any]]


class SettingError(ValueError):
    """A setting holds a value its declaration does not allow.

    ``str(error)`` names the field (``epochs must be ...``); :meth:`render` names it another way
    (the command line: ``--epochs must be ...``). Other settings the message mentions are
    written as ``{name}`` in ``problem`` and named the same way.

    Example:
        >>> error = SettingError("batch_size", "must be >= {epochs}")
        >>> str(error), error.render(lambda name: "--" + name.replace("_", "-"))
        ('batch_size must be >= epochs', '--batch-size must be >= --epochs')
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(self.render(lambda name: name))

    def render(self, name: Callable[[str], str]) -> str:
        """The message with every setting named by ``name(field)``."""
        known = settings_fields()
        problem = re.sub(
            r"\{(\w+)\}",
            lambda match: name(match[1]) if match[1] in known else match[0],
            self.problem,
        )
        return f"{name(self.field)} {problem}"


def setting(
    default: Any,
    help: str,
    *,
    choices: Choices | None = None,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
    flag: str | None = None,
) -> Any:
    """Declare a field of :class:`Experiment`: its default, help, allowed values and flag.

    Args:
        default: the default value.
        help: one or more sentences; the command line's ``--help`` prints them.
        choices: the allowed values, or a function giving them (a registry's names).
        low: smallest allowed number (a bound may be the name of another field, in braces).
        high: largest allowed number.
        open_low: ``low`` itself is not allowed.
        open_high: ``high`` itself is not allowed.
        flag: the command-line flag; default ``--field-name``.

    Example:
        >>> setting(3, "epochs", low=1).metadata["low"]
        1
    """
    metadata = {
        "help": help,
        "choices": choices,
        "low": low,
        "high": high,
        "open_low": open_low,
        "open_high": open_high,
        "flag": flag,
    }
    return dataclasses.field(default=default, metadata=metadata)


@dataclass
class Experiment:
    """Everything that defines a training run: method, data, model, schedule and reporting.

    Each field's declaration (``setting(...)``) documents it; ``explainaug train --help`` prints
    the same text. ``validate()`` checks every field.

    Example:
        >>> Experiment(method="supcon").learning_rate  # the method's default when lr is None
        0.5
    """

    method: str = setting(
        "ce",
        "training method: ce (cross-entropy), supcon, excon, edda or random-occlusion (EDDA's "
        "control: the same occlusions at random places); the right-for-the-right-reasons peers "
        "rrr, sgt (saliency guided training), rrr-gradcam and hint (see --annotation); and any "
        "registered method",
        choices=METHODS.names,
    )
    dataset: str = setting(
        "shapes",
        "shapes and digits ship with the package; cifar100, tiny-imagenet and folder (your "
        "images in ImageFolder layout) read their files from --data",
        choices=DATASETS.names,
    )
    root: str | None = setting(
        None,
        "dataset folder: it holds cifar-100-python, tiny-imagenet-200 or, for folder, "
        "train/<class>/* (and optionally val/<class>/*)",
        flag="--data",
    )
    download: bool = setting(False, "download CIFAR-100 into --data when missing")
    model: str = setting(
        "small-cnn",
        "small-cnn, resnet18, resnet50, torchvision:NAME or timm:NAME (library models start "
        "from random weights, or from --weights)",
    )
    weights: str | None = setting(
        None, "a local state dict for a torchvision:/timm: model (any head size)"
    )
    model_output: str | None = setting(
        None,
        "for a library model with several outputs (a tuple or dict, as GoogLeNet in train "
        "mode), the index (0) or key of its logits",
    )
    width: int = setting(
        16, "channels of the model's first stage (64 for the papers' ResNets)", low=1
    )
    epochs: int = setting(10, "training epochs", low=1)
    batch_size: int = setting(
        128,
        "the global batch: images per step over all processes, split evenly under torchrun "
        "(each of N processes takes batch-size / N), so a run means the same on any number of "
        "GPUs (the official 256 on CIFAR-100, 128 on Tiny ImageNet)",
        low=1,
    )
    lr: float | None = setting(
        None,
        "base learning rate (cosine schedule down to lr * 1e-3); none takes the method's "
        "default: 0.5 for the contrastive methods (SupCon/ExCon recipe), 0.1 for the others",
        low=0,
        open_low=True,
    )
    weight_decay: float = setting(5e-4, "SGD weight decay", low=0)
    lr_warmup_epochs: int = setting(
        0, "epochs of linear learning-rate warm-up", low=0, high="{epochs}"
    )
    temperature: float = setting(
        0.1, "contrastive temperature (SupCon, ExCon)", low=0, open_low=True
    )
    base_temperature: float = setting(
        0.07,
        "the contrastive loss is scaled by temperature / base-temperature; 0.07 as SupContrast "
        "and the official ExCon code (x1.43 at temperature 0.1); equal to the temperature for "
        "scale 1 (pytorch-metric-learning's convention)",
        low=0,
        open_low=True,
    )
    gather_distributed: bool = setting(
        True,
        "under torchrun, SupCon/ExCon contrast each anchor against the whole global batch, as "
        "on one GPU; --no-gather-distributed contrasts within each process's share",
    )
    view_min_scale: float = setting(
        0.2,
        "smallest crop area of the contrastive views (SupContrast: 0.2)",
        low=0,
        high=1,
        open_low=True,
    )
    explain_warmup_epochs: int = setting(
        0,
        "epochs before ExCon/EDDA start using explanations; the official ExCon loop masks from "
        "its exp_epochs-th 1-based epoch, so its --exp_epochs 50 is 49 here (the CIFAR-100 "
        "recipe's value)",
        low=0,
        high="{epochs}",
    )
    explain_start: str = setting(
        "epoch",
        "when ExCon/EDDA (and the control) start using explanations: epoch (at "
        "--explain-warmup-epochs, the reference) or plateau (the first epoch from then on "
        "whose previous epoch's loss was 2% below its plateau, the loss of an untrained model: "
        "explanations of an untrained model are noise)",
        choices=EXPLAIN_STARTS,
    )
    explainer: str = setting(
        "gradcam",
        "the explainer ExCon/EDDA train with (Grad-CAM, as both papers) and explainaug "
        "evaluate explains with by default",
        choices=EXPLAINERS.names,
    )
    cam_layer: str | None = setting(
        None,
        "the backbone's CAM layer (dotted name), which ExCon/EDDA train with and explainaug "
        "evaluate explains with, for every method; none: the model's default (its last stage, "
        "or the last layer with a spatial map where the last stage pools the images to 1x1)",
    )
    occlusion_ratio: float | None = setting(
        None,
        "fraction of pixels EDDA and its random-occlusion control occlude (none: 0.2), and of "
        "the features Saliency Guided Training replaces (none: 0.1, its official default)",
        low=0,
        high=1,
        open_low=True,
        open_high=True,
    )
    salient_target: str = setting(
        "uniform",
        "EDDA's target for views whose salient pixels are occluded (their confidence should "
        "drop): uniform (maximum entropy), smooth (a smoothed label), background (an extra "
        "class, K + 1 logits in training; evaluation sees the K real classes), hinge (below the "
        "clean confidence by a margin) or label (no opposing target)",
        choices=SALIENT_TARGETS,
    )
    control_targets: str = setting(
        "label",
        "targets of the random-occlusion control's two occluded views: label (both keep the "
        "label: the fair control) or edda (the ablation with EDDA's opposing targets: the "
        "second view gets --salient-target)",
        choices=CONTROL_TARGETS,
    )
    linear_head: str = setting(
        "alternating",
        "how SupCon/ExCon train their linear head: alternating (the official loop: after every "
        "contrastive epoch, one cross-entropy epoch of the head on detached features; that head "
        "is ExCon's probe) or online (a probe trained in every contrastive step)",
        choices=LINEAR_HEADS,
    )
    head_augment: bool = setting(
        True,
        "random resized crop (scale 0.2-1) and flip of the head epoch's images, as the official "
        "classifier loader on CIFAR-100 (the Tiny ImageNet recipe turns it off)",
    )
    linear_epochs: int = setting(
        0,
        "epochs of a final linear evaluation of contrastive encoders (a fresh linear classifier "
        "on frozen features of the un-augmented training images replaces the trained head); 0 "
        "keeps the head",
        low=0,
    )
    linear_lr: float = setting(
        1.0, "learning rate of that linear evaluation (cosine schedule)", low=0, open_low=True
    )
    report_best_epoch: bool = setting(
        False,
        "also test after every epoch and report the best test accuracy over epochs, as the "
        "official scripts do (model selection on the test set: optimistic); the accuracy "
        "reported first stays the final epoch's",
    )
    augment: bool = setting(True, "random crop (padding 4) and flip for the classification methods")
    amp: str | None = setting(
        "auto",
        "mixed precision: auto is bf16 on CUDA (fp16 where bf16 is unsupported) and full "
        "precision on the CPU; bf16 and fp16 force a type on CUDA; none is full precision",
        choices=AMP_MODES,
    )
    seed: int = setting(0, "seed of weights, data order and augmentations", low=0, high=2**32 - 1)
    tensorboard: bool = setting(
        False,
        "also write TensorBoard events (needs the tensorboard extra: pip install "
        "'explainaug[tensorboard]'); every run writes metrics.csv and results.json",
    )
    train_size: int = setting(
        2000,
        "shapes only: images of its training set (its test set is a quarter); other datasets "
        "use all their images",
        low=1,
    )
    image_size: int = setting(
        32,
        "side of the shapes images; folder images are resized and center-cropped to it",
        low=1,
    )
    cue_correlation: float | None = setting(
        None,
        "shapes only: plant the shortcut cue in both splits, showing the image's own class "
        "with this probability in [0, 1] (none: no cue)",
        low=0,
        high=1,
    )

    masks: str | None = setting(
        None,
        "folder only: a folder of object masks parallel to --data (the same relative paths, "
        "any image format, the size of their image; non-zero = object), resized with the "
        "images; localization and --annotation object use them",
    )
    cue_masks: str | None = setting(
        None,
        "folder only: a folder of masks of what must not matter (a watermark, a ruler), laid "
        "out as --masks (which it needs), for --annotation cue",
    )
    annotation: str = setting(
        "cue",
        "what the mask-based methods (rrr, rrr-gradcam, hint, cdep) learn from: cue (the cue "
        "masks: shapes with --cue-correlation, or --cue-masks), object (the object masks: only "
        "the object should matter, so its complement is penalised), previous (rrr's "
        "find-another-explanation: no annotation, the largest input gradients of the models of "
        "--previous-runs are penalised) or pixels (cdep only: no annotation, --pixels single "
        "pixels per step are penalised, CDEP's ColorMNIST prior)",
        choices=ANNOTATIONS,
    )
    previous_runs: str | None = setting(
        None,
        "for --annotation previous: comma-separated run folders of the earlier rounds (the "
        "first trained with --method ce); their largest-gradient masks are penalised together",
    )
    pixels: int = setting(
        8,
        "cdep with --annotation pixels: single pixels (all channels) penalised per step, each "
        "on its own, drawn in proportion to how often a pixel is non-zero in the training "
        "images (official: 8)",
        low=1,
    )
    pixel_draw: str = setting(
        "batch",
        "cdep with --annotation pixels: batch (official: the same pixels for every image of a "
        "step) or image (each image draws its own: more distinct pixels per step, same cost)",
        choices=PIXEL_DRAWS,
    )
    penalty_weight: float | None = setting(
        None,
        "weight of the explanation penalty of rrr, rrr-gradcam, hint and cdep, and of sgt's KL "
        "term (none: the official default: rrr 1000 on 0-255 pixels, i.e. 1000/255^2 on the "
        "package's [0, 1] images; rrr-gradcam, hint and sgt 1; cdep 1000 with masks (the "
        "middle of its DecoyMNIST sweep), 5000 with --annotation pixels (its ColorMNIST demo)); "
        "with --scale-penalty it multiplies the automatic scale",
        low=0,
    )
    scale_penalty: bool | None = setting(
        None,
        "scale the penalty of rrr, rrr-gradcam, hint and cdep so that it starts at the size of "
        "the cross-entropy (the XIL typology framework's rule: sum of CE / sum of penalty over "
        "one pass before training, times --penalty-weight); none: on for rrr-gradcam and hint "
        "(as that framework), off for rrr and cdep (their official fixed weights)",
    )
    second_order: bool = setting(
        False,
        "rrr-gradcam and hint: differentiate Grad-CAM's channel weights too (full second "
        "order); the default holds them constant, as the XIL typology framework (Captum)",
    )

    def validate(self) -> Experiment:
        """Check every setting against its declaration; return ``self``.

        Raises:
            SettingError: a value of the wrong type, outside its bounds or choices, or two
                settings that contradict each other (the message names the field).
        """
        for declared in dataclasses.fields(self):
            check_setting(declared, getattr(self, declared.name), self)
        try:
            check_model_name(self.model)
        except ValueError:
            raise SettingError(
                "model", f"must be one of {', '.join(model_names())}, got {self.model!r}"
            ) from None
        if DATASETS[self.dataset].needs_root and not self.root:
            raise SettingError(
                "root",
                f"is needed by dataset {self.dataset!r} ({DATASETS[self.dataset].summary})",
            )
        if self.cue_correlation is not None and self.dataset != "shapes":
            raise SettingError(
                "cue_correlation", f"needs the shapes dataset, got dataset {self.dataset!r}"
            )
        for name in ("masks", "cue_masks"):
            if getattr(self, name) is not None and self.dataset != "folder":
                raise SettingError(name, f"needs dataset folder, got dataset {self.dataset!r}")
        if self.cue_masks is not None and self.masks is None:
            raise SettingError("cue_masks", "needs {masks} too (the object masks)")
        if self.previous_runs is not None and self.annotation != "previous":
            raise SettingError(
                "previous_runs", f"needs {{annotation}} previous, got {self.annotation!r}"
            )
        if self.annotated:
            self._check_annotation()
        return self

    def _check_annotation(self) -> None:
        """The annotation a mask-based method learns from is there."""
        if self.annotation == "cue" and self.cue_correlation is None and self.cue_masks is None:
            raise SettingError(
                "annotation",
                f"cue needs cue masks: shapes with {{cue_correlation}}, or folder with "
                f"{{cue_masks}}; got dataset {self.dataset!r} without (method {self.method!r})",
            )
        if self.annotation == "object" and not (
            DATASETS[self.dataset].masks or self.masks is not None
        ):
            raise SettingError(
                "annotation",
                f"object needs object masks: shapes, or folder with {{masks}}; got dataset "
                f"{self.dataset!r} without (method {self.method!r})",
            )
        if self.annotation == "previous" and not self.previous_runs:
            raise SettingError(
                "annotation", "previous needs {previous_runs} (the earlier rounds' run folders)"
            )

    @property
    def annotated(self) -> bool:
        """True for methods that learn from per-image masks (``MethodEntry.annotated``)."""
        return METHODS[self.method].annotated

    @property
    def training_masks(self) -> str | None:
        """Which masks the training batches carry for the method: ``"cue"`` (object and cue
        masks), ``"object"``, or None (what the data have; the method uses none)."""
        if not self.annotated or self.annotation in ("previous", "pixels"):
            return None
        return self.annotation

    @property
    def learning_rate(self) -> float:
        """``lr``, or the method's default when ``lr`` is None."""
        return self.lr if self.lr is not None else METHODS[self.method].lr

    @property
    def contrastive(self) -> bool:
        """True for methods that train a ``ContrastiveModel`` (SupCon, ExCon)."""
        return METHODS[self.method].contrastive


def check_setting(declared: dataclasses.Field, value: Any, experiment: Experiment) -> None:
    """Check one field's ``value`` against its declaration (type, choices, bounds).

    Bounds in braces name another field of ``experiment`` (``high="{epochs}"``).

    Example:
        >>> field = {f.name: f for f in dataclasses.fields(Experiment)}["epochs"]
        >>> check_setting(field, 0, Experiment())
        Traceback (most recent call last):
        ...
        explainaug.settings.SettingError: epochs must be an int >= 1, got 0
    """
    name, meta = declared.name, declared.metadata
    kind, optional = setting_type(declared)
    if value is None and optional:
        return
    choices = meta["choices"]
    if choices is not None:
        allowed = tuple(choices() if callable(choices) else choices)
        if value not in allowed:
            shown = ", ".join("none" if choice is None else str(choice) for choice in allowed)
            raise SettingError(name, f"must be one of {shown}, got {value!r}")
        return
    if kind is bool:
        right_type = isinstance(value, bool)
    elif kind is str:
        right_type = isinstance(value, str)
    else:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        right_type = number and (kind is float or isinstance(value, int))
        right_type = right_type and math.isfinite(value)
    if not right_type:
        expected = {int: "an int", float: "a finite number", bool: "True or False"}
        text = ("none or " if optional else "") + expected.get(kind, "a string")
        raise SettingError(name, f"must be {text}{_bounds(meta, experiment)}, got {value!r}")
    if kind not in (int, float):
        return
    low, high = (_bound(meta[key], experiment) for key in ("low", "high"))
    too_low = low is not None and (value <= low if meta["open_low"] else value < low)
    too_high = high is not None and (value >= high if meta["open_high"] else value > high)
    if too_low or too_high:
        expected = "an int" if kind is int else "a number"
        raise SettingError(name, f"must be {expected}{_bounds(meta, experiment)}, got {value!r}")


def _bound(bound: float | str | None, experiment: Experiment) -> float | None:
    if isinstance(bound, str):
        return getattr(experiment, bound.strip("{}"))
    return bound


def _bounds(meta: Any, experiment: Experiment) -> str:
    """The allowed range as text (``" >= 1"``, ``" in [0, {epochs} = 10]"``)."""
    low, high = (
        f"{bound} = {_bound(bound, experiment)}" if isinstance(bound, str) else bound
        for bound in (meta["low"], meta["high"])
    )
    if low is None and high is None:
        return ""
    if high is None:
        return f" {'>' if meta['open_low'] else '>='} {low}"
    return f" in {'(' if meta['open_low'] else '['}{low}, {high}{')' if meta['open_high'] else ']'}"


def setting_type(declared: dataclasses.Field) -> tuple[type, bool]:
    """A field's value type and whether it may be None, from its annotation.

    Example:
        >>> fields = {f.name: f for f in dataclasses.fields(Experiment)}
        >>> setting_type(fields["lr"]), setting_type(fields["epochs"])
        ((<class 'float'>, True), (<class 'int'>, False))
    """
    annotation = str(declared.type)
    optional = annotation.endswith("| None")
    base = annotation.removesuffix("| None").strip()
    return {"int": int, "float": float, "bool": bool, "str": str}[base], optional


def settings_fields() -> dict[str, dataclasses.Field]:
    """The declared fields of :class:`Experiment`, by name, in declaration order."""
    return {declared.name: declared for declared in dataclasses.fields(Experiment)}


def flag(name: str) -> str:
    """The command-line flag of the setting ``name`` (``--data`` for ``root``).

    Example:
        >>> flag("batch_size"), flag("root")
        ('--batch-size', '--data')
    """
    return settings_fields()[name].metadata["flag"] or "--" + name.replace("_", "-")
