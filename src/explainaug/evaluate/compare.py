"""Paired comparisons over seeds: is a difference between two methods larger than the seed spread?

Two methods trained with the same seeds form pairs (same data order, same initialisation seed, same
test set). The difference of a metric is taken per seed, and its mean gets a two-sided Student-t
confidence interval over the seeds. A difference is called only when the interval excludes 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TypedDict

from scipy import stats


class PairedDifference(TypedDict):
    """Mean of ``a - b`` over seeds, its confidence interval and the verdict."""

    mean: float
    low: float | None
    high: float | None
    seeds: int
    verdict: str


def paired_difference(
    a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95
) -> PairedDifference:
    """Mean of the per-seed differences ``a[i] - b[i]`` with a Student-t interval.

    ``a`` and ``b`` hold one value per seed, in the same seed order. Returns ``mean``,
    ``low``/``high`` (None for a single seed: no spread to judge by), ``seeds`` and ``verdict``:
    ``"a > b"`` or ``"a < b"`` when the interval excludes 0, else ``"within spread"``.

    Example:
        >>> d = paired_difference([0.9, 0.8, 0.85], [0.7, 0.65, 0.7])
        >>> round(d["mean"], 3), d["verdict"]
        (0.167, 'a > b')
        >>> paired_difference([0.9, 0.7], [0.8, 0.8])["verdict"]
        'within spread'
    """
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(
            f"need one value per seed for both methods, got {len(a)} and {len(b)} values"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    differences = [float(x) - float(y) for x, y in zip(a, b, strict=True)]
    if not all(math.isfinite(d) for d in differences):
        raise ValueError(f"values must be finite, got differences {differences}")
    n = len(differences)
    mean = sum(differences) / n
    if n < 2:
        return {"mean": mean, "low": None, "high": None, "seeds": n, "verdict": "one seed"}
    spread = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * spread / math.sqrt(n)
    low, high = mean - half, mean + half
    verdict = "a > b" if low > 0 else "a < b" if high < 0 else "within spread"
    return {"mean": mean, "low": low, "high": high, "seeds": n, "verdict": verdict}


def paired_table(
    per_seed: Sequence[Mapping[str, Mapping]],
    pairs: Sequence[tuple[str, str]],
    metrics: Sequence[tuple[str, Callable[[Mapping], float | None], bool]],
    *,
    confidence: float = 0.95,
) -> str:
    """A markdown table of paired differences: one row per (pair, metric) measured on every seed.

    Args:
        per_seed: per seed, ``{method: results}``.
        pairs: ``(a, b)`` method names; each row reports ``a - b``.
        metrics: ``(label, results -> value or None, higher is better)``.

    Example:
        >>> runs = [{"x": {"acc": v}, "y": {"acc": w}} for v, w in [(0.9, 0.7), (0.8, 0.7)]]
        >>> print(paired_table(runs, [("x", "y")], [("acc", lambda r: r["acc"], True)]))
        | a - b | metric | mean | 95% interval | seeds | reading |
        |---|---|---|---|---|---|
        | x - y | acc | +0.150 | [-0.485, +0.785] | 2 | within spread |
    """
    lines = [
        f"| a - b | metric | mean | {confidence:.0%} interval | seeds | reading |",
        "|---|---|---|---|---|---|",
    ]
    for first, second in pairs:
        for label, value, higher in metrics:
            a = [value(results[first]) for results in per_seed if first in results]
            b = [value(results[second]) for results in per_seed if second in results]
            if len(a) != len(per_seed) or len(b) != len(per_seed) or None in a or None in b:
                continue
            d = paired_difference(a, b, confidence=confidence)  # type: ignore[arg-type]
            interval = "n/a" if d["low"] is None else f"[{d['low']:+.3f}, {d['high']:+.3f}]"
            reading = d["verdict"]
            if reading in ("a > b", "a < b"):
                wins = (reading == "a > b") == higher
                reading = f"{first if wins else second} better"
            lines.append(
                f"| {first} - {second} | {label} | {d['mean']:+.3f} | {interval} | "
                f"{d['seeds']} | {reading} |"
            )
    return "\n".join(lines)
