"""Paired comparisons over seeds against scipy's paired t-test and a hand-worked case."""

import math

import pytest
from scipy import stats

from explainaug.evaluate.compare import paired_difference, paired_table


def test_interval_equals_scipy_paired_t_test() -> None:
    a = [0.91, 0.88, 0.93, 0.87, 0.90]
    b = [0.85, 0.86, 0.90, 0.80, 0.88]
    ours = paired_difference(a, b, confidence=0.9)
    theirs = stats.ttest_rel(a, b).confidence_interval(confidence_level=0.9)
    assert ours["low"] == pytest.approx(theirs.low, rel=1e-12)
    assert ours["high"] == pytest.approx(theirs.high, rel=1e-12)
    assert ours["verdict"] == "a > b" and ours["seeds"] == 5


def test_hand_worked_three_seeds() -> None:
    # differences 1, 2, 3: mean 2, sample sd 1, t(0.975, df=2) = 4.302653
    d = paired_difference([3.0, 4.0, 5.0], [2.0, 2.0, 2.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert d["mean"] == 2.0
    assert d["low"] == pytest.approx(2 - half) and d["high"] == pytest.approx(2 + half)
    assert d["verdict"] == "within spread"  # 2 - 2.484 < 0


def test_one_seed_has_no_interval_and_bad_input_is_rejected() -> None:
    assert paired_difference([1.0], [0.0]) == {
        "mean": 1.0,
        "low": None,
        "high": None,
        "seeds": 1,
        "verdict": "one seed",
    }
    with pytest.raises(ValueError, match="one value per seed"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([float("nan"), 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="confidence"):
        paired_difference([1.0, 2.0], [0.0, 0.0], confidence=1.0)


def test_table_names_the_better_method_by_direction() -> None:
    runs = [{"x": {"ece": 0.1 + s / 100}, "y": {"ece": 0.2 + s / 90}} for s in range(4)]
    table = paired_table(runs, [("x", "y")], [("ECE", lambda r: r["ece"], False)])
    assert "| x - y | ECE |" in table and "x better" in table  # lower ECE wins
    missing = paired_table(runs, [("x", "z")], [("ECE", lambda r: r["ece"], False)])
    assert missing.count("\n") == 1  # header only: z was never measured
