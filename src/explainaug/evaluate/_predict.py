"""Running a model over a loader: the shared plumbing of every evaluator.

A *loader* is any iterable of batches ``(x, y)`` or ``(x, y, masks)`` with images ``x`` float in
[0, 1], shape ``[B, C, H, W]``, and integer labels ``y`` ``[B]``. Batches are moved to the
model's device (``next(model.parameters()).device``). Evaluators put the model in eval mode and
restore every module's own mode afterwards, also after an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from explainaug._shared import eval_mode, unpack_batch
from explainaug._validation import check_labels
from explainaug.typing import Batch


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a model without either.

    Example:
        >>> model_device(torch.nn.Linear(2, 2))
        device(type='cpu')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def iterate_batches(
    loader: Iterable, device: torch.device, name: str = "loader"
) -> Iterator[Batch]:
    """Yield the loader's batches (``_shared.unpack_batch``) on ``device``; an empty loader
    raises ``ValueError``.

    Example:
        >>> loader = [(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]))]
        >>> [batch.images.shape[0] for batch in iterate_batches(loader, torch.device("cpu"))]
        [2]
    """
    if not isinstance(loader, Iterable):
        raise TypeError(
            f"{name} must be an iterable of (x, y[, masks]) batches, got {type(loader).__name__}"
        )
    empty = True
    for batch in loader:
        empty = False
        x, y, *masks = unpack_batch(batch)
        yield Batch(
            x.to(device, non_blocking=True),
            y.to(device, dtype=torch.long, non_blocking=True),
            *(None if mask is None else mask.to(device, non_blocking=True) for mask in masks),
        )
    if empty:
        raise ValueError(f"{name} yielded no batches; evaluation needs at least one sample")


def predict(
    model: nn.Module, loader: Iterable, transform: Callable[[Tensor], Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    """Run ``model`` over ``loader`` in eval mode under ``torch.no_grad``; gather the outputs.

    ``no_grad`` (not ``inference_mode``), so the logits can feed autograd later (fitting a
    temperature). ``transform`` is applied to each image batch on the device before the forward
    pass (e.g. a corruption). Returns ``(logits [N, classes], labels [N])`` on the model's
    device, logits in float32.

    Example:
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> loader = [(torch.rand(2, 3, 2, 2), torch.tensor([0, 2]))] * 2
        >>> logits, labels = predict(model, loader)
        >>> logits.shape, labels.tolist()
        (torch.Size([4, 3]), [0, 2, 0, 2])
    """
    device = model_device(model)
    all_logits: list[Tensor] = []
    all_labels: list[Tensor] = []
    with eval_mode(model), torch.no_grad():
        for x, y, *_ in iterate_batches(loader, device):
            if transform is not None:
                x = transform(x)
            logits = model(x)
            if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] != len(y):
                got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
                raise ValueError(
                    f"the model must return logits [{len(y)}, classes] for a batch "
                    f"of {len(y)}, got {got}"
                )
            all_logits.append(logits.float())
            all_labels.append(y)
    logits, labels = torch.cat(all_logits), torch.cat(all_labels)
    check_labels(labels, labels.shape[0], num_classes=logits.shape[1], name="y")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("the model returned NaN or infinite logits")
    return logits, labels


def first_images(loader: Iterable, n: int, device: torch.device) -> Tensor:
    """The first ``n`` images of a loader (fewer if it holds fewer), on ``device``.

    Example:
        >>> loader = [(torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.long))] * 2
        >>> first_images(loader, 4, torch.device("cpu")).shape
        torch.Size([4, 1, 2, 2])
    """
    taken: list[Tensor] = []
    total = 0
    for x, *_ in iterate_batches(loader, device):
        taken.append(x[: n - total])
        total += taken[-1].shape[0]
        if total >= n:
            break
    return torch.cat(taken)
