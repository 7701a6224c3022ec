"""Evaluators: accuracy, calibration under shift, adversarial robustness, randomization sanity
checks, faithfulness and localization of explanations, shortcut reliance on a planted cue, and a
report writer.

All run as batched torch code on the model's device, in eval mode (the model's modes are
restored), on loaders of ``(x, y)`` or ``(x, y, masks)`` batches with images in [0, 1].

Example:
    >>> from explainaug.models import SmallCNN
    >>> loader = [(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))]
    >>> accuracy(SmallCNN(num_classes=2, width=4), loader)["count"]
    4
"""

from explainaug.evaluate.accuracy import accuracy
from explainaug.evaluate.calibration import (
    brier_score,
    calibration,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)
from explainaug.evaluate.compare import paired_difference, paired_table
from explainaug.evaluate.faithfulness import faithfulness
from explainaug.evaluate.localization import localization
from explainaug.evaluate.randomization import data_randomization, model_randomization
from explainaug.evaluate.report import report
from explainaug.evaluate.robustness import fgsm, pgd, robustness
from explainaug.evaluate.shortcut import shortcut
from explainaug.evaluate.similarity import hog, rank_correlation, ssim

__all__ = [
    "accuracy",
    "brier_score",
    "calibration",
    "expected_calibration_error",
    "fgsm",
    "fit_temperature",
    "paired_difference",
    "paired_table",
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
    "shortcut",
    "ssim",
]
