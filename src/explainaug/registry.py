"""One registry per kind: methods, explainers, datasets, models and evaluators.

Each entry holds everything the rest of the package needs to know about one name: where its
code lives (``"package.module:attribute"``, imported only when it is built, so that listing
names and ``explainaug train --help`` never import torch), a one-line summary, and the facts
other modules ask about (a method's default learning rate, an explainer's CAM layer, an
evaluator's table, figure and headline numbers). No other module keeps a list of names.

Adding a method is one module plus one entry, from anywhere (a test, a notebook, a plugin)::

    METHODS.register("mine", MethodEntry("my_package.my_method:MyMethod", "my method"))

Example:
    >>> METHODS.names()[:3]
    ('ce', 'supcon', 'excon')
    >>> EXPLAINERS["GradCAM"].load().__name__
    'GradCAM'
    >>> DATASETS.names(needs_root=False)
    ('shapes', 'digits')
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

PathStep = str | int | Callable[[Any], Any]


@dataclass(frozen=True)
class Entry:
    """A registered name: where its code lives and what it is, in one line.

    Attributes:
        code: ``"package.module:attribute"`` of the class or function the name builds (imported
            when it is built), or the class or function itself (for code defined where it is
            registered, e.g. in a notebook).
        summary: one line for ``--help`` and error messages.
    """

    code: str | Callable[..., Any]
    summary: str = ""

    def load(self) -> Any:
        """The class or function ``code`` names (imports its module).

        Example:
            >>> Entry("explainaug.registry:Entry").load().__name__
            'Entry'
        """
        return resolve(self.code) if isinstance(self.code, str) else self.code


def resolve(code: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names (imports its module).

    Example:
        >>> resolve("explainaug.registry:model_names")()[0]
        'small-cnn'
    """
    module, _, attribute = code.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class MethodEntry(Entry):
    """A training method (a ``explainaug.train.Method`` subclass).

    Building one from settings is a lookup plus keywords: the class takes, as keyword
    arguments, the settings of :class:`~explainaug.settings.Experiment` it uses (by name).

    Attributes:
        contrastive: trains a ``ContrastiveModel`` (encoder, projection head, linear head); its
            runs are explained with Grad-CAM without ReLU, as the official ExCon code.
        lr: the default learning rate (the ``lr`` setting when it is not given).
        annotated: learns from per-image masks (the ``annotation`` setting chooses which: cue
            masks, object masks, or the largest gradients of previous runs).
    """

    contrastive: bool = False
    lr: float = 0.1
    annotated: bool = False


@dataclass(frozen=True)
class ExplainerEntry(Entry):
    """A saliency method: ``load()(model, **options)`` builds it.

    Attributes:
        takes_layer: its constructor takes a CAM layer (``layer=``).
        signed: options that make its ``attribute`` signed (Adebayo et al.'s no-ABS maps, e.g.
            the signed gradient); methods without are signed or non-negative by construction.
    """

    takes_layer: bool = False
    signed: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetEntry(Entry):
    """A dataset: ``load()(split, **options)`` returns its ``"train"`` or ``"test"`` split.

    Attributes:
        needs_root: it reads a data folder (``--data``).
        masks: its images come with object masks (localization can run).
    """

    needs_root: bool = False
    masks: bool = False


@dataclass(frozen=True)
class ModelEntry(Entry):
    """One of the package's models: ``load()(num_classes or None, width=, mean=, std=)``."""


@dataclass(frozen=True)
class Headline:
    """One number of an evaluator that comparison tables show (one column each).

    Attributes:
        label: the column title.
        path: keys into one model's results; a callable step transforms the value reached.
        higher_is_better: the direction in which a method is better.
    """

    label: str
    path: tuple[PathStep, ...]
    higher_is_better: bool


@dataclass(frozen=True)
class EvaluatorEntry(Entry):
    """An evaluator of the report: ``load()(job)`` runs it on one model (see
    ``explainaug.evaluate.report.Job``) and returns its JSON-able results.

    Attributes:
        title: the heading of its section in ``report.md``.
        table: ``"module:function"`` of its table (results by model -> Markdown or None).
        figure: ``"module:function"`` of its figure (results by model, folder -> PNG name or
            None), or None.
        headlines: the numbers comparison tables show.
        explains: it evaluates explanations (it needs an explainer, one row per explainer).
        optional: run only when named (it needs data of its own).
        needs: what the data must offer: ``"masks"`` (object masks) or ``"cues"`` (the
            shortcut testbed's cue-aligned and cue-conflicting sets); None for any data.
    """

    title: str = ""
    table: str | None = None
    figure: str | None = None
    headlines: tuple[Headline, ...] = ()
    explains: bool = False
    optional: bool = False
    needs: str | None = None


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    """Names of one kind and their entries, in registration order.

    Args:
        kind: what the names are ("method", "explainer", ...), for messages.
        case_sensitive: False matches names case-insensitively (they are stored lower-case).

    Example:
        >>> colours = Registry("colour")
        >>> _ = colours.register("red", Entry("builtins:str", "a warm colour"))
        >>> colours["red"].summary, "blue" in colours
        ('a warm colour', False)
    """

    def __init__(self, kind: str, *, case_sensitive: bool = True) -> None:
        self.kind = kind
        self.case_sensitive = case_sensitive
        self._entries: dict[str, E] = {}

    def _key(self, name: str) -> str:
        if not isinstance(name, str):
            raise TypeError(f"{self.kind} name must be a string, got {type(name).__name__}")
        return name if self.case_sensitive else name.lower()

    def register(self, name: str, entry: E) -> E:
        """Add ``entry`` as ``name``; return it. A name is registered once.

        Raises:
            ValueError: ``name`` is taken (``unregister`` it first to replace it).
        """
        key = self._key(name)
        if key in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[key] = entry
        return entry

    def unregister(self, name: str) -> E:
        """Remove ``name``; return its entry (an unknown name raises ``ValueError``)."""
        self[name]
        return self._entries.pop(self._key(name))

    def __getitem__(self, name: str) -> E:
        entry = self._entries.get(self._key(name))
        if entry is None:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self)}")
        return entry

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> tuple[tuple[str, E], ...]:
        """``(name, entry)`` pairs in registration order."""
        return tuple(self._entries.items())

    def names(self, **facts: object) -> tuple[str, ...]:
        """The names, in registration order; only those whose entry has the given ``facts``.

        Example:
            >>> METHODS.names(contrastive=True)
            ('supcon', 'excon')
        """
        return tuple(
            name
            for name, entry in self._entries.items()
            if all(getattr(entry, fact) == value for fact, value in facts.items())
        )


METHODS: Registry[MethodEntry] = Registry("method")
EXPLAINERS: Registry[ExplainerEntry] = Registry("explainer", case_sensitive=False)
DATASETS: Registry[DatasetEntry] = Registry("dataset")
MODELS: Registry[ModelEntry] = Registry("model")
EVALUATORS: Registry[EvaluatorEntry] = Registry("evaluator")

LIBRARIES = ("torchvision", "timm")
"""Prefixes of library models: ``torchvision:NAME``, ``timm:NAME``."""

_TRAIN = "explainaug.train.methods"
METHODS.register("ce", MethodEntry(f"{_TRAIN}.cross_entropy:CrossEntropy", "cross-entropy"))
METHODS.register(
    "supcon",
    MethodEntry(
        f"{_TRAIN}.supcon:SupCon", "supervised contrastive learning", contrastive=True, lr=0.5
    ),
)
METHODS.register(
    "excon",
    MethodEntry(
        f"{_TRAIN}.excon:ExCon",
        "SupCon with saliency-masked views and background negatives",
        contrastive=True,
        lr=0.5,
    ),
)
METHODS.register(
    "edda",
    MethodEntry(
        f"{_TRAIN}.edda:EDDA",
        "cross-entropy on salient and non-salient occlusions",
    ),
)
METHODS.register(
    "random-occlusion",
    MethodEntry(
        f"{_TRAIN}.random_occlusion:RandomOcclusionControl",
        "EDDA's control: the same occlusions at random places",
    ),
)
METHODS.register(
    "rrr",
    MethodEntry(
        f"{_TRAIN}.rrr:RRR",
        "right for the right reasons: cross-entropy + squared input gradients in the masks",
        annotated=True,
    ),
)
METHODS.register(
    "sgt",
    MethodEntry(
        f"{_TRAIN}.sgt:SaliencyGuidedTraining",
        "saliency guided training: KL to views whose least salient features are random",
    ),
)
METHODS.register(
    "rrr-gradcam",
    MethodEntry(
        f"{_TRAIN}.cam_penalty:RRRGradCAM",
        "cross-entropy + the normalised Grad-CAM inside the masks (predicted class)",
        annotated=True,
    ),
)
METHODS.register(
    "hint",
    MethodEntry(
        f"{_TRAIN}.cam_penalty:HINT",
        "cross-entropy + Grad-CAM (true class) matched to the region that should matter",
        annotated=True,
    ),
)

_EXPLAIN = "explainaug.explain"
for _name, _code, _takes_layer, _signed in (
    ("saliency", "gradient:Saliency", False, {"abs": False}),
    ("inputxgradient", "gradient:InputXGradient", False, {}),
    ("integratedgradients", "integrated_gradients:IntegratedGradients", False, {}),
    ("smoothgrad", "smoothgrad:smoothgrad", False, {"abs": False}),
    ("guidedbackprop", "guided_backprop:GuidedBackprop", False, {}),
    ("gradcam", "gradcam:GradCAM", True, {}),
    ("guidedgradcam", "guided_gradcam:GuidedGradCAM", True, {}),
    ("integratedgradcam", "integrated_gradcam:IntegratedGradCAM", True, {}),
    ("sise", "sise:SISE", False, {}),
    ("adasise", "sise:AdaSISE", False, {}),
    ("gradcamplusplus", "gradcam:GradCAMPlusPlus", True, {}),
    ("xgradcam", "gradcam:XGradCAM", True, {}),
    ("hirescam", "gradcam:HiResCAM", True, {}),
    ("layercam", "gradcam:LayerCAM", True, {}),
    ("eigencam", "eigencam:EigenCAM", True, {}),
    ("scorecam", "scorecam:ScoreCAM", True, {}),
    ("rise", "rise:RISE", False, {}),
    ("occlusion", "occlusion:Occlusion", False, {}),
):
    EXPLAINERS.register(
        _name, ExplainerEntry(f"{_EXPLAIN}.{_code}", takes_layer=_takes_layer, signed=_signed)
    )

_DATA = "explainaug.data.load"
DATASETS.register(
    "shapes",
    DatasetEntry(
        f"{_DATA}:load_shapes", "synthetic shapes with object masks (shipped)", masks=True
    ),
)
DATASETS.register(
    "digits", DatasetEntry(f"{_DATA}:load_digits", "scikit-learn's 8x8 digits, upscaled (shipped)")
)
METHODS.register(
    "cdep",
    MethodEntry(
        f"{_TRAIN}.cdep:CDEP",
        "cross-entropy + the masks' share of the logits by contextual decomposition",
        annotated=True,
    ),
)
DATASETS.register(
    "cifar100",
    DatasetEntry(f"{_DATA}:load_cifar100", "CIFAR-100 in DIR/cifar-100-python", needs_root=True),
)
DATASETS.register(
    "tiny-imagenet",
    DatasetEntry(
        f"{_DATA}:load_tiny_imagenet", "Tiny ImageNet in DIR/tiny-imagenet-200", needs_root=True
    ),
)
DATASETS.register(
    "folder",
    DatasetEntry(
        f"{_DATA}:load_folder",
        "your images: DIR/train/<class>/*, DIR/val/<class>/* (optional)",
        needs_root=True,
    ),
)

MODELS.register("small-cnn", ModelEntry("explainaug.models.small_cnn:SmallCNN", "a small CNN"))
MODELS.register("resnet18", ModelEntry("explainaug.models.resnet:resnet18", "CIFAR ResNet-18"))
MODELS.register("resnet50", ModelEntry("explainaug.models.resnet:resnet50", "CIFAR ResNet-50"))

_EVALUATE = "explainaug.evaluate"
_WRITER = f"{_EVALUATE}.report_writer"
EVALUATORS.register(
    "accuracy",
    EvaluatorEntry(
        f"{_EVALUATE}.accuracy:run_in_report",
        "top-k and per-class accuracy",
        title="Accuracy",
        table=f"{_WRITER}:accuracy_table",
        headlines=(Headline("accuracy", ("accuracy", "top1"), True),),
    ),
)
EVALUATORS.register(
    "calibration",
    EvaluatorEntry(
        f"{_EVALUATE}.calibration:run_in_report",
        "calibration (ECE, NLL, Brier) on clean and corrupted images",
        title="Calibration",
        table=f"{_WRITER}:calibration_table",
        figure=f"{_WRITER}:calibration_figures",
        headlines=(
            Headline("ECE", ("calibration", "clean", "ece"), False),
            Headline("accuracy (corrupted)", ("calibration", "mean", "accuracy"), True),
            Headline("ECE (corrupted)", ("calibration", "mean", "ece"), False),
        ),
    ),
)
EVALUATORS.register(
    "robustness",
    EvaluatorEntry(
        f"{_EVALUATE}.robustness:run_in_report",
        "accuracy under FGSM and PGD attacks",
        title="Robustness (adversarial accuracy)",
        table=f"{_WRITER}:robustness_table",
        figure=f"{_WRITER}:robustness_figure",
        headlines=(
            Headline("FGSM 2/255", ("robustness", "adversarial", "fgsm", str(2 / 255)), True),
            Headline("PGD 2/255", ("robustness", "adversarial", "pgd", str(2 / 255)), True),
        ),
    ),
)
EVALUATORS.register(
    "randomization",
    EvaluatorEntry(
        f"{_EVALUATE}.randomization:run_in_report",
        "model-randomization sanity check of the explanations",
        title="Randomization sanity check (similarity to the original maps)",
        table=f"{_WRITER}:randomization_table",
        figure=f"{_WRITER}:randomization_figure",
        # after the last step: a rank correlation either way is dependence on the trained
        # weights, so its size counts (0 = the maps no longer follow the weights)
        headlines=(
            Headline(
                "randomized Spearman magnitude",
                ("randomization", "similarity", "spearman_abs", "mean", -1, abs),
                False,
            ),
        ),
        explains=True,
    ),
)
EVALUATORS.register(
    "faithfulness",
    EvaluatorEntry(
        f"{_EVALUATE}.faithfulness:run_in_report",
        "faithfulness of the explanations (AD/IC, deletion/insertion, occlusion drops)",
        title="Faithfulness",
        table=f"{_WRITER}:faithfulness_table",
        figure=f"{_WRITER}:faithfulness_figure",
        headlines=(
            Headline("avg drop %", ("faithfulness", "average_drop_pct"), False),
            Headline("increase %", ("faithfulness", "increase_in_confidence_pct"), True),
            Headline("deletion AUC", ("faithfulness", "deletion_auc"), False),
            Headline("insertion AUC", ("faithfulness", "insertion_auc"), True),
            Headline("salient drop", ("faithfulness", "salient_drop"), True),
            Headline("non-salient change", ("faithfulness", "nonsalient_change"), False),
        ),
        explains=True,
    ),
)
EVALUATORS.register(
    "localization",
    EvaluatorEntry(
        f"{_EVALUATE}.localization:run_in_report",
        "localization of the explanations against object masks",
        title="Localization",
        table=f"{_WRITER}:localization_table",
        headlines=(
            Headline("EBPG", ("localization", "ebpg"), True),
            Headline("mIoU", ("localization", "miou"), True),
            Headline("pointing game", ("localization", "pointing_game"), True),
        ),
        explains=True,
        needs="masks",
    ),
)
EVALUATORS.register(
    "shortcut",
    EvaluatorEntry(
        f"{_EVALUATE}.shortcut:run_in_report",
        "reliance on a planted cue: cue-aligned vs cue-conflicting test images",
        title="Shortcut (cue-aligned vs cue-conflicting test images; shares of saliency energy, "
        "cue area = a uniform map's cue share)",
        table=f"{_WRITER}:shortcut_table",
        figure=f"{_WRITER}:shortcut_figure",
        headlines=(
            Headline("accuracy (aligned)", ("shortcut", "aligned", "accuracy"), True),
            Headline("accuracy (conflicting)", ("shortcut", "conflicting", "accuracy"), True),
            Headline("gap", ("shortcut", "gap"), False),
            Headline("cue share (aligned)", ("shortcut", "aligned", "cue_share"), False),
            Headline("cue share (conflicting)", ("shortcut", "conflicting", "cue_share"), False),
            Headline("object share (aligned)", ("shortcut", "aligned", "object_share"), True),
            Headline(
                "object share (conflicting)", ("shortcut", "conflicting", "object_share"), True
            ),
        ),
        explains=True,
        optional=True,
        needs="cues",
    ),
)


def model_names() -> tuple[str, ...]:
    """The package's model names, then the library patterns.

    Example:
        >>> model_names()
        ('small-cnn', 'resnet18', 'resnet50', 'torchvision:NAME', 'timm:NAME')
    """
    return (*MODELS, *(f"{library}:NAME" for library in LIBRARIES))


def check_model_name(name: object) -> str:
    """Return ``name`` if it names a model (a library's names are checked when built).

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
