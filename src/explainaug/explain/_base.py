"""The explainer contract and the machinery every explainer shares.

An explainer wraps a model. ``explainer(x, target)`` returns non-negative maps ``[B, 1, H, W]``
at input resolution; ``explainer.attribute(x, target)`` returns the method's raw output in
Captum's shape and sign conventions. Both leave the model as they found it: train/eval mode,
BatchNorm running statistics, ``requires_grad`` flags and hooks (also after an exception).
Every explainer takes ``model`` (a classifier of images in [0, 1] that normalises inside and
returns logits) and ``check_values`` (see :class:`Explainer`); the CAM methods also take
``layer`` and ``reshape`` (see :class:`~explainaug.explain.cam.CAM`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

import torch
from torch import Tensor, nn

from explainaug._shared import preserved_model_state
from explainaug._validation import check_channels_first, check_images
from explainaug.typing import Target


@contextmanager
def captured_outputs(modules: Sequence[nn.Module]) -> Iterator[list[Tensor | None]]:
    """Record the forward output of each module while the block runs; hooks are always removed.

    Yields:
        A list with one slot per module, filled with the module's latest output.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN()
        >>> with captured_outputs([model.block3]) as outputs:
        ...     _ = model(torch.zeros(1, 3, 32, 32))
        >>> outputs[0].shape
        torch.Size([1, 64, 8, 8])
    """
    outputs: list[Tensor | None] = [None] * len(modules)

    def make_hook(index: int) -> Callable:
        def hook(_module: nn.Module, _inputs: tuple, output: Tensor) -> None:
            outputs[index] = output

        return hook

    with ExitStack() as stack:
        for index, module in enumerate(modules):
            stack.callback(module.register_forward_hook(make_hook(index)).remove)
        yield outputs


def check_target(target: Target, batch_size: int, device: torch.device) -> Tensor | None:
    """Turn ``target`` (int, LongTensor[B] or None) into a LongTensor[B] on ``device``.

    ``None`` stays ``None`` and means "the predicted class". Range is checked later, against
    the model's number of outputs (see ``class_scores``).

    Example:
        >>> check_target(3, 2, torch.device("cpu")).tolist()
        [3, 3]
    """
    if target is None:
        return None
    if isinstance(target, bool):
        raise TypeError("target must be an int, a LongTensor[B] or None, got bool")
    if isinstance(target, int):
        if target < 0:
            raise ValueError(f"target must be >= 0, got {target}")
        return torch.full((batch_size,), target, dtype=torch.long, device=device)
    if not isinstance(target, Tensor):
        raise TypeError(
            f"target must be an int, a LongTensor[B] or None, got {type(target).__name__}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.ndim == 0:
        target = target.expand(batch_size)
    if target.ndim != 1 or target.shape[0] != batch_size:
        raise ValueError(
            f"target must have shape [{batch_size}] to match the batch, got {tuple(target.shape)}"
        )
    return target.to(device=device, dtype=torch.long)


def class_scores(logits: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
    """Pick each row's target logit; ``None`` picks the predicted (argmax) class.

    Returns:
        ``(scores [B], target [B])``.

    Example:
        >>> class_scores(torch.tensor([[1.0, 3.0], [2.0, 0.0]]), None)[0].tolist()
        [3.0, 2.0]
    """
    if logits.ndim != 2:
        raise ValueError(
            f"the model must return logits [B, classes], got shape {tuple(logits.shape)}"
        )
    if target is None:
        target = logits.detach().argmax(dim=1)
    return logits.gather(1, target[:, None]).squeeze(1), target


def check_target_range(target: Tensor | None, num_classes: int) -> None:
    """Raise ``ValueError`` when a target index is outside ``[0, num_classes)``.

    Costs one host-device sync; explainers run it only when ``check_values`` is on.

    Example:
        >>> check_target_range(torch.tensor([0, 1]), 2)
    """
    if target is None or target.numel() == 0:
        return
    low, high = int(target.min()), int(target.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"target must lie in [0, {num_classes - 1}] for a model with {num_classes} outputs, "
            f"got values in [{low}, {high}]"
        )


class Explainer(ABC):
    """Base class of every saliency method.

    Subclasses implement ``_attribute(x, target, create_graph)`` and, where the raw output is
    not an input-shaped attribution, ``_to_maps(raw, x)``.

    Args:
        model: the classifier to explain; it must return logits ``[B, classes]``.
        check_values: check inputs for NaN/inf and targets for range on every call (one
            host-device sync). Training loops that feed known-good batches turn it off.
    """

    #: Whether the method backpropagates (gradient-free ones also run under inference mode).
    needs_gradients = True
    #: Whether ``create_graph=True`` is supported (perturbation methods score without a graph).
    differentiable = True

    def __init__(self, model: nn.Module, *, check_values: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.check_values = check_values

    def attribute(self, x: Tensor, target: Target = None, *, create_graph: bool = False) -> Tensor:
        """The method's raw output, in Captum's shape and sign conventions.

        Args:
            x: images ``[B, C, H, W]`` as the model expects them.
            target: class to explain: int, LongTensor[B], or None for the predicted class.
            create_graph: keep the graph so the result is differentiable w.r.t. the model's
                parameters (for losses on explanations).
        """
        if self.needs_gradients and torch.is_inference_mode_enabled():
            raise RuntimeError(
                "explainers need gradients: call them outside torch.inference_mode() "
                "(torch.no_grad() around them is fine)"
            )
        x = check_channels_first(check_images(x, finite=self.check_values))
        if self.needs_gradients and x.is_inference():
            raise ValueError(
                "x is an inference tensor (made under torch.inference_mode()), which cannot "
                "take part in a backward pass; pass x.clone() made outside inference mode"
            )
        weight = next(self.model.parameters(), None)
        if weight is not None and weight.is_floating_point() and x.dtype != weight.dtype:
            raise TypeError(
                f"x has dtype {x.dtype} but the model's parameters are {weight.dtype}; "
                f"convert the images with x.to({weight.dtype})"
            )
        target_tensor = check_target(target, x.shape[0], x.device)
        if create_graph and not self.differentiable:
            raise ValueError(
                f"{type(self).__name__} maps are not differentiable (perturbed images are scored "
                "without a graph); call it with create_graph=False"
            )
        with preserved_model_state(self.model), torch.enable_grad():
            raw = self._attribute(x, target_tensor, create_graph)
        return raw if create_graph else raw.detach()

    def __call__(self, x: Tensor, target: Target = None, *, create_graph: bool = False) -> Tensor:
        """Non-negative saliency maps ``[B, 1, H, W]`` at the input resolution.

        Arguments as in ``attribute``.
        """
        raw = self.attribute(x, target, create_graph=create_graph)
        return self._to_maps(raw, x)

    def _scores(self, inputs: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        """Forward ``inputs`` and return (target logits [N], target [N]), range-checked."""
        return self._checked_scores(self.model(inputs), target)

    def _checked_scores(self, logits: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
        """``class_scores`` of ``logits``, with ``target`` range-checked when ``check_values``."""
        if self.check_values and target is not None:
            check_target_range(target, logits.shape[1])
        return class_scores(logits, target)

    def _predicted(self, x: Tensor) -> Tensor:
        """The predicted class of each image (one forward, no graph)."""
        with torch.no_grad():
            return self.model(x).argmax(dim=1)

    @abstractmethod
    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        """Compute the raw attribution; runs inside ``preserved_model_state`` with grad on."""

    def _to_maps(self, raw: Tensor, x: Tensor) -> Tensor:
        """Default for input-space methods: absolute value summed over channels."""
        return raw.abs().sum(dim=1, keepdim=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.model).__name__})"
