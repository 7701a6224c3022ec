"""The contract of a training method and the helpers every method shares."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._shared import is_contrastive, unpack_batch
from explainaug._validation import check_count
from explainaug.explain import Explainer, run_explainer
from explainaug.losses import EDDALoss
from explainaug.settings import EXPLAIN_STARTS
from explainaug.typing import BatchAugment, ExplainerLike, Metrics

logger = logging.getLogger("explainaug")

OCCLUSION_RATIO = 0.2
"""EDDA's and its control's occluded fraction when ``occlusion_ratio`` is None."""

PLATEAU_MARGIN = 0.02
"""A loss has left its plateau once its epoch mean is this fraction below the plateau value."""


class Method(ABC):
    """One training method: turns a batch into a loss for the model being trained.

    A method takes, as keyword arguments, the settings of
    :class:`~explainaug.settings.Experiment` it uses (by their names), so building one from
    settings is a registry lookup plus keywords; parts such as an explainer stay optional
    overrides for Python users.

    ``Trainer`` calls ``prepare(model)`` and ``setup(model)`` once with the unwrapped model (never
    the DDP wrapper), ``begin(model, loader)`` before the first epoch of a fresh run (not on
    resume), then ``training_step(model, batch, epoch)`` for every batch, inside autocast and,
    under DDP, inside the wrapper's forward so gradients are synchronised. Steps return tensors
    only: no ``.item()`` or other host syncs. What ``state_dict()`` returns is checkpointed and
    given back to ``load_state_dict`` on resume.

    A method with ``alternating_head = True`` also gets, after each epoch, one epoch of
    ``head_step(model, batch, epoch)`` over the same loader, optimised by the same optimizer at
    the learning rate the epoch ended with (SupContrast's and ExCon's linear-head epoch).
    """

    #: Whether the Trainer runs an epoch of ``head_step`` after every training epoch.
    alternating_head: bool = False

    #: The explainer of the live model the method trains with (built by ``setup``; None for
    #: methods without explanations). ``run.json`` records it, ``explainaug evaluate`` uses it.
    live_explainer: ExplainerLike | None = None

    #: Outputs the model trains beyond the dataset's classes (EDDA's "background" column,
    #: the last): no accuracy counts them as predictions.
    extra_logits: int = 0

    def class_logits(self, logits: Tensor) -> Tensor:
        """``logits`` without the ``extra_logits`` columns: the scores of the real classes."""
        return logits[:, : logits.shape[1] - self.extra_logits] if self.extra_logits else logits

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model to train for ``model``, called by ``Trainer`` before anything else: the
        model itself, or a wrapper the method needs (SupCon/ExCon wrap a plain classifier)."""
        return model

    def setup(self, model: nn.Module) -> None:  # noqa: B027 (optional hook)
        """Check that ``model`` suits the method and build what depends on it (explainers)."""

    def begin(self, model: nn.Module, loader: Iterable) -> None:  # noqa: B027 (optional hook)
        """Once before the first epoch of a fresh run, with the training loader (e.g. to scale
        a loss from one pass over the data)."""

    def state_dict(self) -> dict[str, Any]:
        """What the method learned during the run (tensors, numbers), for checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what :meth:`state_dict` returned."""

    def start_epoch(self, epoch: int, history: Sequence[dict[str, Any]]) -> None:  # noqa: B027
        """Called by ``Trainer`` before each epoch (0-based ``epoch``, also the one a resumed run
        continues) with the records of the epochs done, e.g. to decide when explanations start.
        """

    @abstractmethod
    def training_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        """Return ``(loss, metrics)``: a scalar loss with a graph and scalar metric tensors.

        Args:
            model: the model being trained (unwrapped, in train mode).
            batch: ``(x, y)``, ``(x, y, masks)`` or ``(x, y, masks, cue_masks)``, images in
                [0, 1] on the model's device (see ``explainaug._shared.unpack_batch``).
            epoch: the current epoch (0-based), for warm-up schedules.
        """

    def head_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        """One step of the per-epoch head phase (only for ``alternating_head`` methods)."""
        raise NotImplementedError(f"{type(self).__name__} has no head phase")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LazyAugment:
    """An augmentation given as a module, or as True for a default built for the image size of
    the first batch (``make(size)``); False or None for none.

    Example:
        >>> from explainaug.augment import crop_flip
        >>> augment = LazyAugment(True, crop_flip)
        >>> augment(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(
        self, augment: bool | BatchAugment | None, make: Callable[[int], BatchAugment]
    ) -> None:
        if not (augment is None or isinstance(augment, bool) or callable(augment)):
            raise TypeError(
                f"augment must be True, False, None or a callable, got {type(augment).__name__}"
            )
        self.given = augment
        self.make = make
        self._built: BatchAugment | None = augment if callable(augment) else None

    def for_size(self, size: int) -> BatchAugment | None:
        """The augmentation of images of side ``size`` (None: none); built once.

        Example:
            >>> LazyAugment(False, lambda size: None).for_size(32) is None
            True
        """
        if self.given is True and self._built is None:
            self._built = self.make(size)
        return self._built

    def __call__(self, x: Tensor) -> Tensor:
        augment = self.for_size(x.shape[-1])
        return x if augment is None else augment(x)

    def __repr__(self) -> str:
        return repr(self.given)


def plateau(rows: int, scale: float) -> float:
    """The loss of a model that tells nothing apart: cross-entropy over ``rows`` equal scores
    (``ln rows``), times ``scale``. For a contrastive loss ``rows`` is the rows an anchor is
    contrasted with (``2B - 1`` for two views of ``B`` images) and ``scale`` its
    ``temperature / base_temperature``; for cross-entropy the classes and 1.

    Example:
        >>> round(plateau(127, 0.1 / 0.07), 3)
        6.92
    """
    return scale * math.log(rows)


def on_plateau(record: dict[str, Any], key: str) -> bool | None:
    """Whether an epoch's mean loss ``record[key]`` is still within ``PLATEAU_MARGIN`` of its
    plateau ``record["plateau"]`` (None when the record has either missing).

    Example:
        >>> on_plateau({"loss": 6.916, "plateau": 6.92}, "loss"), on_plateau({"loss": 6.5,
        ...     "plateau": 6.92}, "loss")
        (True, False)
    """
    loss, level = record.get(key), record.get("plateau")
    if loss is None or level is None:
        return None
    return loss > (1 - PLATEAU_MARGIN) * level


class ExplanationStart:
    """When a method starts using explanations: at ``warmup_epochs`` (``"epoch"``, the
    reference), or at the first epoch from then on whose previous epoch's loss was below its
    plateau by ``PLATEAU_MARGIN`` (``"plateau"``; an untrained model's explanations are noise). Decided from the
    history alone, so a resumed run decides the same. Starting while the loss is still on its
    plateau is said in one line.

    Example:
        >>> start = ExplanationStart(2, "plateau", "ExCon", "contrastive_loss")
        >>> history = [{"contrastive_loss": 6.92, "plateau": 6.92}] * 2
        >>> start.update(2, history), start.update(3, [*history, {"contrastive_loss": 6.1,
        ...     "plateau": 6.92}])
        (False, True)
    """

    def __init__(
        self,
        warmup_epochs: int,
        when: str,
        method: str,
        loss_key: str,
        phase: str = "using explanations",
    ) -> None:
        check_count(warmup_epochs, "explain_warmup_epochs", minimum=0)
        if when not in EXPLAIN_STARTS:
            raise ValueError(f"explain_start must be one of {EXPLAIN_STARTS}, got {when!r}")
        self.warmup_epochs = warmup_epochs
        self.when = when
        self.method = method
        self.loss_key = loss_key
        self.phase = phase
        self.active_from: int | None = None if when == "plateau" else warmup_epochs

    def update(self, epoch: int, history: Sequence[dict[str, Any]]) -> bool:
        """Decide, before ``epoch``, whether explanations are used from it on; return that."""
        self.active_from = None if self.when == "plateau" else self.warmup_epochs
        if self.when == "plateau":
            for done in range(self.warmup_epochs, epoch + 1):
                if done > 0 and on_plateau(history[done - 1], self.loss_key) is False:
                    self.active_from = done
                    break
        if (
            epoch == self.active_from
            and epoch > 0
            and on_plateau(history[epoch - 1], self.loss_key)
        ):
            record = history[epoch - 1]
            logger.warning(
                "%s starts %s at epoch %d while its loss %.4f is still on its plateau %.4f (an "
                "untrained model's explanations are noise): warm the learning "
                "rate up (--lr-warmup-epochs), lower --lr, train longer first "
                "(--explain-warmup-epochs) or start once the loss leaves it "
                "(--explain-start plateau)",
                self.method,
                self.phase,
                epoch + 1,
                record[self.loss_key],
                record["plateau"],
            )
        return self.active(epoch)

    def active(self, epoch: int) -> bool:
        """Whether explanations are used in ``epoch``."""
        return self.active_from is not None and epoch >= self.active_from


def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction of rows whose argmax equals the label, as a tensor (no host sync).

    Example:
        >>> accuracy(torch.tensor([[2.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0])).item()
        0.5
    """
    return (logits.detach().argmax(dim=1) == labels).float().mean()


def require_contrastive(model: nn.Module, method: str) -> None:
    """Raise ``TypeError`` unless ``model`` offers ``features``, ``project`` and ``classify``
    (as ``explainaug.models.ContrastiveModel`` does).

    Example:
        >>> from explainaug.models import ContrastiveModel, SmallCNN
        >>> require_contrastive(ContrastiveModel(SmallCNN(None, width=4), 16, 8, 3), "SupCon")
    """
    if not is_contrastive(model):
        missing = [
            name
            for name in ("features", "project", "classify")
            if not callable(getattr(model, name, None))
        ]
        raise TypeError(
            f"{method} needs a contrastive model with features/project/classify (e.g. "
            f"explainaug.models.ContrastiveModel); {type(model).__name__} lacks {missing}"
        )


def build_live_explainer(
    explainer: str | ExplainerLike, model: nn.Module, method: str, cam_layer: str | None
) -> ExplainerLike:
    """The explainer a method trains with on ``model``: a registry name is built by
    ``explain.run_explainer`` (the run's CAM layer and Grad-CAM ReLU) without per-step value
    checks (host syncs); an explainer object is used as given and must explain this very model
    (explanations come from the live weights).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> build_live_explainer("gradcam", SmallCNN(num_classes=3, width=4), "EDDA", None)
        GradCAM(SmallCNN, layer='block3')
    """
    check_explainer(explainer, cam_layer, method)
    if isinstance(explainer, str):
        return run_explainer(explainer, model, cam_layer, check_values=False)
    if not callable(explainer) or getattr(explainer, "model", None) is not model:
        raise ValueError(
            f"{method}'s explainer must be a registry name or a callable explainer whose .model "
            f"is the model being trained (explanations come from the live weights); "
            f"got {explainer!r}"
        )
    return explainer


def check_explainer(explainer: object, cam_layer: str | None, method: str) -> None:
    """Raise ``ValueError`` for a ``cam_layer`` beside an explainer object (the layer is the
    explainer's own).

    Example:
        >>> check_explainer("gradcam", "block2", "EDDA")
    """
    if not isinstance(explainer, str) and cam_layer is not None:
        raise ValueError(f"{method}: give an explainer name with cam_layer=, or an explainer")


def explainer_record(explainer: ExplainerLike | None) -> dict[str, object] | None:
    """What ``run.json`` records of the explainer a method trained with: its registry name, the
    CAM layer as given (None: the model's default, chosen again the same way) and Grad-CAM's
    ReLU.

    Example:
        >>> from explainaug.explain import GradCAM
        >>> from explainaug.models import SmallCNN
        >>> explainer_record(GradCAM(SmallCNN(num_classes=3, width=4), layer="block2"))
        {'name': 'gradcam', 'layer': 'block2', 'relu': True}
    """
    if explainer is None:
        return None
    from explainaug.registry import EXPLAINERS

    kind = type(explainer)
    names = [name for name, entry in EXPLAINERS.items() if entry.load() is kind]
    record: dict[str, object] = {"name": names[0] if names else kind.__name__}
    if isinstance(explainer, Explainer) and hasattr(explainer, "layer_name"):
        record["layer"] = explainer.layer_name if explainer.layer_given else None
    if hasattr(explainer, "relu"):
        record["relu"] = explainer.relu
    return record


def explain_float32(explainer: ExplainerLike, x: Tensor, target: Tensor) -> Tensor:
    """``explainer(x, target)`` in float32 with autocast off, as the official ExCon code
    explains: maps of a bf16/fp16 pass are coarser and add ties to the ranks that select pixels.

    Example:
        >>> from explainaug.explain import GradCAM
        >>> from explainaug.models import SmallCNN
        >>> cam = GradCAM(SmallCNN(num_classes=3, width=4))
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     maps = explain_float32(cam, torch.rand(2, 3, 16, 16), torch.tensor([0, 2]))
        >>> maps.dtype
        torch.float32
    """
    with torch.autocast(x.device.type, enabled=False):
        return explainer(x.float(), target)


class OcclusionAlignment(Method):
    """Cross-entropy on clean images plus an alignment loss on two occluded views.

    Subclasses choose the occlusions (``occlude``). Until the occlusions start (``start``) the
    step is plain cross-entropy, which reports its plateau ``ln K``; afterwards one forward pass
    over ``cat([x, x_nonsalient, x_salient])`` (3B) feeds ``loss(clean, nonsalient, salient, y)``.

    Args:
        loss: an ``EDDALoss``-like module.
        start: when the occlusions start (``ExplanationStart``).
        augment: batched augmentation of the images (e.g. crop and flip) applied before
            anything else, or True for ``augment.crop_flip`` of the images' size; explanations
            and occlusions are of the augmented images.
    """

    def __init__(
        self,
        loss: nn.Module,
        start: ExplanationStart,
        augment: bool | BatchAugment | None,
    ) -> None:
        from explainaug.augment import crop_flip

        self.loss = loss
        self.start = start
        self.augment = LazyAugment(augment, crop_flip)

    @property
    def explain_warmup_epochs(self) -> int:
        """Epochs of plain cross-entropy before the occlusions can start."""
        return self.start.warmup_epochs

    def start_epoch(self, epoch: int, history: Sequence[dict[str, Any]]) -> None:
        self.start.update(epoch, history)

    @property
    def extra_logits(self) -> int:  # type: ignore[override]
        """1 when the loss trains a background class (``salient_target="background"``)."""
        return int(getattr(self.loss, "salient_target", None) == "background")

    @abstractmethod
    def occlude(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(x_nonsalient, x_salient)``: images in [0, 1] shaped like ``x``."""

    def training_step(self, model: nn.Module, batch: Any, epoch: int) -> tuple[Tensor, Metrics]:
        x, y, *_ = unpack_batch(batch)
        x = self.augment(x)
        if not self.start.active(epoch):
            logits = model(x)
            return F.cross_entropy(logits, y), {
                "accuracy": accuracy(self.class_logits(logits), y),
                "plateau": logits.new_full((), plateau(logits.shape[1], 1.0)),
            }
        nonsalient, salient = self.occlude(model, x, y)
        logits = model(torch.cat([x, nonsalient, salient]))
        clean_logits, nonsalient_logits, salient_logits = logits.chunk(3)
        loss = self.loss(clean_logits, nonsalient_logits, salient_logits, y)
        return loss, {
            "accuracy": accuracy(self.class_logits(clean_logits), y),
            "nonsalient_accuracy": accuracy(self.class_logits(nonsalient_logits), y),
            "salient_accuracy": accuracy(self.class_logits(salient_logits), y),
        }


def occlusion_loss(salient_target: str) -> EDDALoss:
    """The default alignment loss of EDDA and its control: ``EDDALoss(salient_target)`` without
    per-step label checks (host syncs)."""
    return EDDALoss(salient_target=salient_target, check_values=False)
