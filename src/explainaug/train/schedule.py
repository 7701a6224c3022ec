"""Per-iteration learning-rate schedule: linear warm-up, then cosine decay (SupContrast)."""

from __future__ import annotations

import math

from explainaug._validation import check_count


def lr_factor(
    step: int, total_steps: int, warmup_steps: int = 0, final_ratio: float = 1e-3
) -> float:
    """Multiplier of the base learning rate at optimisation step ``step`` (0-based).

    Cosine decay from 1 to ``final_ratio`` over ``total_steps`` (SupContrast decays to
    ``lr * 1e-3``). During the first ``warmup_steps`` steps the factor rises linearly to the
    cosine value at the end of the warm-up, as in SupContrast's warm-up, but per iteration.

    Args:
        step: steps already taken (0 for the first update).
        total_steps: steps of the whole run (epochs * batches per epoch), > 0.
        warmup_steps: length of the linear warm-up, in steps.
        final_ratio: factor reached at the end of the run.

    Example:
        >>> lr_factor(0, 100), round(lr_factor(50, 100), 4), round(lr_factor(100, 100), 4)
        (1.0, 0.5005, 0.001)
        >>> lr_factor(0, 100, warmup_steps=10) < lr_factor(9, 100, warmup_steps=10)
        True
    """
    check_count(total_steps, "total_steps")
    check_count(warmup_steps, "warmup_steps", minimum=0, maximum=total_steps)

    def cosine(t: int) -> float:
        return (
            final_ratio
            + (1 - final_ratio) * (1 + math.cos(math.pi * min(t, total_steps) / total_steps)) / 2
        )

    if step < warmup_steps:
        return cosine(warmup_steps) * (step + 1) / warmup_steps
    return cosine(step)
