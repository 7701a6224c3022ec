"""Input checks shared by every layer of the package.

Each check raises ``TypeError`` or ``ValueError`` with a message that names what was expected and
what came. Checks that need the values of a tensor (NaN, range) cost one reduction and one
host-device sync; they run once per public call, never inside loops over a batch.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_tensor(value: object, name: str) -> Tensor:
    """Raise ``TypeError`` unless ``value`` is a tensor; return it.

    Example:
        >>> check_tensor(torch.zeros(2), "x").shape
        torch.Size([2])
    """
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_images(x: object, name: str = "x", *, finite: bool = True) -> Tensor:
    """Check a float image batch ``[B, C, H, W]`` with B >= 1 (and finite values); return it.

    Example:
        >>> check_images(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """
    x = check_tensor(x, name)
    if x.ndim != 4:
        raise ValueError(f"{name} must have shape [B, C, H, W] (4 dims), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got batch size 0")
    if x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_channels_first(x: Tensor, name: str = "x") -> Tensor:
    """Raise ``ValueError`` for a batch that looks channels-last: ``[B, H, W, C]`` with ``C`` 1 or
    3 and ``H > 4`` would otherwise pass as an image with ``H`` channels.

    Example:
        >>> check_channels_first(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 3, 32, 32])
        >>> check_channels_first(torch.zeros(2, 32, 32, 3))
        Traceback (most recent call last):
        ...
        ValueError: x has shape (2, 32, 32, 3), which looks channels-last [B, H, W, C]; images must be [B, C, H, W] (use x.permute(0, 3, 1, 2))
    """
    if x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] > 4:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}, which looks channels-last [B, H, W, C]; images "
            f"must be [B, C, H, W] (use {name}.permute(0, 3, 1, 2))"
        )
    return x


def check_maps(
    maps: object, images: Tensor, name: str = "saliency", *, finite: bool = True
) -> Tensor:
    """Check saliency maps ``[B, 1, h, w]`` (or ``[B, h, w]``) of ``images``; return ``[B, 1, h, w]``.

    The maps may have a lower resolution than the images; batch size and device must match.
    ``finite`` also rejects NaN/inf (one host-device sync).

    Example:
        >>> check_maps(torch.rand(2, 8, 8), torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 1, 8, 8])
    """
    maps = check_tensor(maps, name)
    if maps.ndim == 3:
        maps = maps.unsqueeze(1)
    if maps.ndim != 4 or maps.shape[1] != 1:
        raise ValueError(
            f"{name} must have shape [B, 1, H, W] or [B, H, W], got {tuple(maps.shape)}"
        )
    if maps.shape[0] != images.shape[0]:
        raise ValueError(
            f"{name} has batch size {maps.shape[0]} but the images have {images.shape[0]}"
        )
    if maps.device != images.device:
        raise ValueError(f"{name} is on {maps.device} but the images are on {images.device}")
    if not maps.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {maps.dtype}")
    if finite and not bool(torch.isfinite(maps).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return maps


def check_labels(
    labels: object, batch_size: int, num_classes: int | None = None, name: str = "labels"
) -> Tensor:
    """Check integer class labels ``[B]`` against a batch size and, optionally, a class count.

    Example:
        >>> check_labels(torch.tensor([0, 2]), 2, num_classes=3).tolist()
        [0, 2]
    """
    labels = check_tensor(labels, name)
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"{name} must be an integer tensor (torch.long), got dtype {labels.dtype}")
    if labels.ndim != 1 or labels.shape[0] != batch_size:
        raise ValueError(f"{name} must have shape [{batch_size}], got {tuple(labels.shape)}")
    if num_classes is not None and labels.numel() > 0:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            raise ValueError(
                f"{name} must lie in [0, {num_classes - 1}], got values in [{low}, {high}]"
            )
    return labels


def check_count(
    value: object,
    name: str,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    optional: bool = False,
) -> int | None:
    """Raise ``ValueError`` unless ``value`` is an int in ``[minimum, maximum]`` (no bool), or
    None when ``optional``.

    Example:
        >>> check_count(3, "n_steps")
        3
        >>> check_count(0, "warmup_epochs", minimum=0, maximum=10)
        0
    """
    if optional and value is None:
        return None
    too_big = maximum is not None and isinstance(value, int) and value > maximum
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or too_big:
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        expected = f"{'None or ' if optional else ''}an int {bounds}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_positive(value: float, name: str) -> float:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0.

    Example:
        >>> check_positive(0.1, "temperature")
        0.1
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not (value > 0 and value != float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_nonnegative(value: float, name: str) -> float:
    """Raise ``ValueError`` unless ``value`` is a finite number >= 0 (a weight).

    Example:
        >>> check_nonnegative(0.0, "salient_weight")
        0.0
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_interval(
    value: float,
    name: str,
    low: float,
    high: float,
    *,
    include_low: bool = True,
    include_high: bool = True,
) -> float:
    """Raise ``ValueError`` unless ``value`` is a number between ``low`` and ``high`` (NaN fails).

    Example:
        >>> check_interval(0.1, "label_smoothing", 0, 1, include_high=False)
        0.1
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    above = low <= value if include_low else low < value
    below = value <= high if include_high else value < high
    if not (above and below):
        bounds = f"{'[' if include_low else '('}{low}, {high}{']' if include_high else ')'}"
        raise ValueError(f"{name} must lie in {bounds}, got {value}")
    return value


def check_fraction(value: float, name: str, *, closed: bool = False) -> float:
    """Raise ``ValueError`` unless ``0 < value < 1`` (``0 <= value <= 1`` when ``closed``).

    Example:
        >>> check_fraction(0.2, "ratio")
        0.2
    """
    return check_interval(value, name, 0, 1, include_low=closed, include_high=closed)


def check_device(device: str | torch.device) -> torch.device:
    """Raise ``ValueError`` unless ``device`` names a device this machine has (cpu, cuda[:N], mps).

    Example:
        >>> check_device("cpu")
        device(type='cpu')
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"device {device!r}: no CUDA GPU is available here (use cpu)")
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s)")
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r}: MPS is not available here (use cpu)")
    elif parsed.type != "cpu":
        raise ValueError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    return parsed


SPLITS = ("train", "test")
"""The two splits of every dataset: training, and the held-out images every accuracy is of."""


def check_split(split: object) -> str:
    """Raise ``ValueError`` unless ``split`` is ``"train"`` or ``"test"``.

    Example:
        >>> check_split("test")
        'test'
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split  # type: ignore[return-value]
