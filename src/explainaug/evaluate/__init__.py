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
from explainaug.evaluate.faithfulness import faithfulness
from explainaug.evaluate.localization import localization
from explainaug.evaluate.randomization import (
    data_randomization,
    model_randomization,
    train_on_permuted_labels,
)
from explainaug.evaluate.report import report
from explainaug.evaluate.similarity import hog, rank_correlation, ssim

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
    "data_randomization",
    "faithfulness",
    "hog",
    "localization",
    "model_randomization",
    "rank_correlation",
    "report",
    "ssim",
    "train_on_permuted_labels",
]
