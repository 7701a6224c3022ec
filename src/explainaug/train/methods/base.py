"""The contract of a training method and the helpers every method shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from explainaug._validation import check_count
from explainaug.explain import GradCAM
from explainaug.losses import EDDALoss
from explainaug.models.normalize import model_mean  # noqa: F401  (shared with evaluate)
from explainaug.typing import Batch, BatchAugment, ExplainerLike, Metrics


class Method(ABC):
    """One training method: turns a batch into a loss for the model being trained.

    ``Trainer`` calls ``setup(model)`` once with the unwrapped model (never the DDP wrapper),
    then ``training_step(model, batch, epoch)`` for every batch, inside autocast and, under
    DDP, inside the wrapper's forward so gradients are synchronised. Steps return tensors
    only: no ``.item()`` or other host syncs.

    A method with ``alternating_head = True`` also gets, after each epoch, one epoch of
    ``head_step(model, batch, epoch)`` over the same loader, optimised by the same optimizer at
    the learning rate the epoch ended with (SupContrast's and ExCon's linear-head epoch).
    """

    #: Whether the Trainer runs an epoch of ``head_step`` after every training epoch.
    alternating_head: bool = False

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

    @abstractmethod
    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, Metrics]:
        """Return ``(loss, metrics)``: a scalar loss with a graph and scalar metric tensors.

        Args:
            model: the model being trained (unwrapped, in train mode).
            batch: ``(x, y)`` or ``(x, y, masks)`` with images in [0, 1] on the model's device.
            epoch: the current epoch (0-based), for warm-up schedules.
        """

    def head_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, Metrics]:
        """One step of the per-epoch head phase (only for ``alternating_head`` methods)."""
        raise NotImplementedError(f"{type(self).__name__} has no head phase")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def split_batch(batch: object) -> tuple[Tensor, Tensor]:
    """Return ``(x, y)`` from a ``(x, y)`` or ``(x, y, masks)`` batch; shape checks only (no sync).

    Example:
        >>> x, y = split_batch((torch.zeros(2, 3, 8, 8), torch.tensor([0, 1])))
        >>> x.shape, y.tolist()
        (torch.Size([2, 3, 8, 8]), [0, 1])
    """
    if (
        not isinstance(batch, Sequence)
        or isinstance(batch, (str, bytes))
        or len(batch) not in (2, 3)
    ):
        kind = type(batch).__name__
        size = f" of length {len(batch)}" if isinstance(batch, Sequence) else ""
        raise TypeError(f"a batch must be a tuple (x, y) or (x, y, masks), got a {kind}{size}")
    x, y = batch[0], batch[1]
    if not isinstance(x, Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = (
            f"shape {tuple(x.shape)}, dtype {x.dtype}"
            if isinstance(x, Tensor)
            else type(x).__name__
        )
        raise ValueError(f"batch images must be a float tensor [B, C, H, W] in [0, 1], got {got}")
    if not isinstance(y, Tensor) or y.ndim != 1 or y.is_floating_point() or y.dtype == torch.bool:
        got = (
            f"shape {tuple(y.shape)}, dtype {y.dtype}"
            if isinstance(y, Tensor)
            else type(y).__name__
        )
        raise ValueError(f"batch labels must be an integer tensor [B], got {got}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"batch has {x.shape[0]} images but {y.shape[0]} labels")
    return x, y


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
    missing = [
        name
        for name in ("features", "project", "classify")
        if not callable(getattr(model, name, None))
    ]
    if missing:
        raise TypeError(
            f"{method} needs a contrastive model with features/project/classify (e.g. "
            f"explainaug.models.ContrastiveModel); {type(model).__name__} lacks {missing}"
        )


def live_explainer(
    explainer: ExplainerLike | None,
    model: nn.Module,
    method: str,
    relu: bool = True,
    layer: str | None = None,
) -> ExplainerLike:
    """The explainer to use on ``model``: Grad-CAM (``relu`` as ``GradCAM``) on ``layer`` (a
    dotted name; a ``ContrastiveModel``'s encoder layers may be named as in the encoder) or the
    default CAM layer when ``explainer`` is None, built with ``check_values=False`` (no per-step
    host syncs); otherwise ``explainer``, which must explain this very model (explanations come
    from the live weights).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(num_classes=3, width=4)
        >>> type(live_explainer(None, model, "EDDA")).__name__
        'GradCAM'
    """
    if explainer is None:
        from explainaug.models.contrastive import qualify_layer

        name = None if layer is None else qualify_layer(model, layer)
        return GradCAM(model, layer=name, relu=relu, check_values=False)
    if not callable(explainer) or getattr(explainer, "model", None) is not model:
        raise ValueError(
            f"{method}'s explainer must be a callable explainer whose .model is the model being "
            f"trained (explanations come from the live weights); got {explainer!r}"
        )
    return explainer


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

    Subclasses choose the occlusions (``occlude``). Before ``warmup_epochs`` the step is plain
    cross-entropy; afterwards one forward pass over ``cat([x, x_nonsalient, x_salient])`` (3B)
    feeds ``loss(clean, nonsalient, salient, y)``.

    Args:
        loss: an ``EDDALoss``-like module; None builds ``EDDALoss(check_values=False)``.
        warmup_epochs: epochs of plain cross-entropy first (early saliency is noise).
        augment: optional batched augmentation of the images (e.g. crop and flip) applied
            before anything else; explanations and occlusions are of the augmented images.
    """

    def __init__(
        self,
        loss: nn.Module | None = None,
        warmup_epochs: int = 0,
        augment: BatchAugment | None = None,
    ) -> None:
        check_count(warmup_epochs, "warmup_epochs", minimum=0)
        self.loss = EDDALoss(check_values=False) if loss is None else loss
        self.warmup_epochs = warmup_epochs
        self.augment = augment

    @property
    def extra_logits(self) -> int:  # type: ignore[override]
        """1 when the loss trains a background class (``salient_target="background"``)."""
        return int(getattr(self.loss, "salient_target", None) == "background")

    @abstractmethod
    def occlude(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(x_nonsalient, x_salient)``: images in [0, 1] shaped like ``x``."""

    def training_step(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, Metrics]:
        x, y = split_batch(batch)
        if self.augment is not None:
            x = self.augment(x)
        if epoch < self.warmup_epochs:
            logits = model(x)
            return F.cross_entropy(logits, y), {"accuracy": accuracy(self.class_logits(logits), y)}
        nonsalient, salient = self.occlude(model, x, y)
        logits = model(torch.cat([x, nonsalient, salient]))
        clean_logits, nonsalient_logits, salient_logits = logits.chunk(3)
        loss = self.loss(clean_logits, nonsalient_logits, salient_logits, y)
        return loss, {
            "accuracy": accuracy(self.class_logits(clean_logits), y),
            "nonsalient_accuracy": accuracy(self.class_logits(nonsalient_logits), y),
            "salient_accuracy": accuracy(self.class_logits(salient_logits), y),
        }
