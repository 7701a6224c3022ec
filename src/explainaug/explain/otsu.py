"""Otsu's threshold, batched over rows and computed on the values' device.

``otsu_threshold`` splits each row of ``[N, n]`` values in two classes that maximise the
between-class variance of a ``bins``-bin histogram. Histograms are built with ``scatter_add``
(``torch.histc`` is not batched) and the variance of every split comes from cumulative sums, so
there is no loop over rows and no host-device sync.
"""

from __future__ import annotations

import torch
from torch import Tensor

from explainaug._validation import check_count, check_tensor


def bin_counts(bin_index: Tensor, bins: int, valid: Tensor | None = None) -> Tensor:
    """Histogram each row of integer bin indices ``[N, n]`` into ``[N, bins]`` float64 counts;
    with ``valid`` (bool ``[N, n]``) only its ``True`` entries count.

    Example:
        >>> bin_counts(torch.tensor([[0, 2, 2]]), 3).tolist()
        [[1.0, 0.0, 2.0]]
    """
    weights = torch.ones_like(bin_index, dtype=torch.float64)
    if valid is not None:
        weights = weights * valid
    counts = torch.zeros(bin_index.shape[0], bins, dtype=torch.float64, device=bin_index.device)
    return counts.scatter_add_(1, bin_index, weights)


def otsu_split(counts: Tensor) -> Tensor:
    """The Otsu split of each histogram row ``[N, bins]``: LongTensor ``[N]`` in ``[1, bins)``.

    Split ``s`` puts bins ``< s`` in the lower class and bins ``>= s`` in the upper class and
    maximises the between-class variance ``w0 * w1 * (mean0 - mean1) ** 2`` (bin index as the
    level; ties go to the smallest ``s``; a split with an empty class scores 0, so a row with a
    single occupied bin, or none, gives ``s = 1``).

    Example:
        >>> otsu_split(torch.tensor([[2.0, 1.0, 0.0, 3.0]])).tolist()
        [2]
    """
    counts = counts.to(torch.float64)
    levels = torch.arange(counts.shape[1], dtype=torch.float64, device=counts.device)
    weight_low = counts.cumsum(dim=1)[:, :-1]
    mass_low = (counts * levels).cumsum(dim=1)[:, :-1]
    weight_high = counts.sum(dim=1, keepdim=True) - weight_low
    mass_high = (counts * levels).sum(dim=1, keepdim=True) - mass_low
    mean_low = mass_low / weight_low.clamp_min(1e-300)
    mean_high = mass_high / weight_high.clamp_min(1e-300)
    variance = weight_low * weight_high * (mean_low - mean_high) ** 2
    both_classes = (weight_low > 0) & (weight_high > 0)
    variance = torch.where(both_classes, variance, torch.zeros_like(variance))
    return variance.argmax(dim=1) + 1


def otsu_threshold(
    values: Tensor,
    *,
    bins: int = 256,
    value_range: tuple[float, float] | None = None,
    valid: Tensor | None = None,
) -> Tensor:
    """Otsu's threshold of each row of ``values``, batched and on the values' device.

    Each row is histogrammed into ``bins`` equal bins over ``value_range`` (default: the row's own
    min and max of the valid values, as scikit-image does); values outside the range count in the
    end bins. The threshold returned is the upper edge of the last bin of the lower class, so
    ``values > threshold`` reproduces the histogram's split. scikit-image's ``threshold_otsu``
    returns the centre of that bin instead, half a bin lower. A row whose values all fall in one
    bin gets the upper edge of the first bin.

    Args:
        values: float ``[N, n]`` (one threshold per row) or ``[n]`` (one threshold).
        bins: number of histogram bins, >= 2.
        value_range: ``(low, high)`` with ``low < high`` shared by all rows, or None.
        valid: optional bool mask shaped like ``values``; only ``True`` entries are histogrammed
            (rows may hold different numbers of values). A row with no valid value gets the
            upper edge of its first bin.

    Returns:
        Thresholds ``[N]`` (a 0-dim tensor for 1-D input), in ``values.dtype``.

    Example:
        >>> values = torch.tensor([[0.0625, 0.1875, 0.0625, 0.8125, 0.9375],
        ...                        [0.0, 0.0, 1.0, 1.0, 1.0]])
        >>> otsu_threshold(values, bins=8, value_range=(0.0, 1.0)).tolist()
        [0.25, 0.125]
    """
    values = check_tensor(values, "values")
    if not values.is_floating_point():
        raise TypeError(f"values must be a floating-point tensor, got dtype {values.dtype}")
    if values.ndim not in (1, 2) or values.shape[-1] == 0:
        raise ValueError(
            f"values must have shape [n] or [N, n] with n >= 1, got {tuple(values.shape)}"
        )
    check_count(bins, "bins", minimum=2)
    if value_range is not None:
        low, high = value_range
        if not float(low) < float(high):
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    if valid is not None:
        valid = check_tensor(valid, "valid")
        if valid.dtype != torch.bool:
            raise TypeError(f"valid must be a bool tensor, got dtype {valid.dtype}")
        if valid.shape != values.shape:
            raise ValueError(
                f"valid must have the shape of values {tuple(values.shape)}, "
                f"got {tuple(valid.shape)}"
            )
    if not bool(torch.isfinite(values).all()):
        raise ValueError("values contain NaN or infinite values")
    single = values.ndim == 1
    rows = values.unsqueeze(0) if single else values
    mask = None if valid is None else (valid.unsqueeze(0) if single else valid)
    thresholds = rows_otsu_threshold(rows, bins, value_range, mask)
    return thresholds.squeeze(0) if single else thresholds


def rows_otsu_threshold(
    values: Tensor, bins: int, value_range: tuple[float, float] | None, valid: Tensor | None
) -> Tensor:
    """``otsu_threshold`` for finite ``[N, n]`` values without input checks (for hot paths).

    Example:
        >>> rows_otsu_threshold(torch.tensor([[0.0, 1.0]]), 2, None, None).tolist()
        [0.5]
    """
    if value_range is None:
        if valid is None:
            low, high = values.amin(dim=1), values.amax(dim=1)
        else:
            low = torch.where(valid, values, torch.full_like(values, float("inf"))).amin(dim=1)
            high = torch.where(valid, values, torch.full_like(values, float("-inf"))).amax(dim=1)
            empty = ~valid.any(dim=1)
            low = torch.where(empty, torch.zeros_like(low), low)
            high = torch.where(empty, torch.zeros_like(high), high)
    else:
        low = torch.full(
            values.shape[:1], float(value_range[0]), dtype=values.dtype, device=values.device
        )
        high = torch.full_like(low, float(value_range[1]))
    low, high = low.to(torch.float64), high.to(torch.float64)
    width = (high - low) / bins
    scaled = (values.to(torch.float64) - low[:, None]) / width.clamp_min(1e-300)[:, None]
    bin_index = scaled.floor().clamp(0, bins - 1).long()
    split = otsu_split(bin_counts(bin_index, bins, valid))
    return (low + split * width).to(values.dtype)
