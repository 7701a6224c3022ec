"""explainaug.evaluate."""

from explainaug.evaluate.accuracy import accuracy
from explainaug.evaluate.calibration import (
    brier_score,
    calibration,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)
from explainaug.evaluate.robustness import fgsm, pgd, robustness

__all__ = [
    "accuracy",
    "brier_score",
    "calibration",
    "expected_calibration_error",
    "fgsm",
    "fit_temperature",
    "pgd",
    "reliability_diagram",
    "robustness",
]
