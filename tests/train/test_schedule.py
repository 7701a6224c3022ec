"""The per-iteration schedule against SupContrast's cosine formula and its warm-up rule."""

from __future__ import annotations

import math

import pytest

from explainaug.train import lr_factor


def supcontrast_cosine(lr: float, t: float, total: float) -> float:
    """SupContrast util.adjust_learning_rate (cosine branch), per step instead of per epoch."""
    eta_min = lr * 0.1**3
    return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / total)) / 2


@pytest.mark.parametrize("step", [0, 1, 17, 50, 99, 100])
def test_cosine_matches_supcontrast(step):
    assert lr_factor(step, 100) * 0.5 == pytest.approx(supcontrast_cosine(0.5, step, 100))


def test_warmup_rises_linearly_to_the_cosine_value():
    values = [lr_factor(step, 100, warmup_steps=10) for step in range(11)]
    target = lr_factor(10, 100)
    assert values[9] == pytest.approx(target)
    assert values[:10] == pytest.approx([target * (k + 1) / 10 for k in range(10)])
    assert values[10] == pytest.approx(target)


@pytest.mark.parametrize("kwargs", [dict(total_steps=0), dict(total_steps=10, warmup_steps=11)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        lr_factor(0, **kwargs)


def test_schedule_rejects_bool_and_fractional_steps():
    with pytest.raises(ValueError, match="warmup_steps must be an int in"):
        lr_factor(0, 10, warmup_steps=True)
    with pytest.raises(ValueError, match="total_steps must be an int >= 1"):
        lr_factor(0, 10.5)
