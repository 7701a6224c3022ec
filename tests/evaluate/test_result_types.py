"""Each evaluator returns exactly the keys of its TypedDict (required always, optional when asked)."""

import pytest
import torch

from explainaug.evaluate import (
    calibration,
    data_randomization,
    faithfulness,
    localization,
    model_randomization,
    robustness,
)
from explainaug.evaluate.calibration import CalibrationMetrics, CalibrationResult
from explainaug.evaluate.faithfulness import FaithfulnessResult
from explainaug.evaluate.localization import LocalizationResult
from explainaug.evaluate.randomization import (
    DataRandomizationResult,
    ModelRandomizationResult,
    SimilaritySummary,
)
from explainaug.evaluate.robustness import RobustnessResult
from explainaug.explain import Saliency
from explainaug.models import SmallCNN


def assert_fits(result: dict, typed_dict: type) -> None:
    keys = set(result)
    assert typed_dict.__required_keys__ <= keys
    assert keys <= typed_dict.__required_keys__ | typed_dict.__optional_keys__


@pytest.fixture
def setup():
    generator = torch.Generator().manual_seed(0)
    model = SmallCNN(num_classes=3, width=4)
    x = torch.rand(4, 3, 16, 16, generator=generator)
    y = torch.tensor([0, 1, 2, 0])
    masks = torch.zeros(4, 1, 16, 16, dtype=torch.bool)
    masks[..., 4:12, 4:12] = True
    return model, x, y, [(x, y, masks)]


def test_explanation_metrics(setup) -> None:
    model, x, _, loader = setup
    assert_fits(faithfulness(model, Saliency(model), loader, deletion_steps=2), FaithfulnessResult)
    assert_fits(localization(model, Saliency(model), loader), LocalizationResult)
    for random_map in (True, False):
        result = model_randomization(
            model, Saliency, x, similarity="ssim", include_random_map=random_map
        )
        assert_fits(result, ModelRandomizationResult)
        assert ("random_map" in result) == random_map
        other = SmallCNN(num_classes=3, width=4)
        result = data_randomization(
            model, other, Saliency, x, similarity="ssim", include_random_map=random_map
        )
        assert_fits(result, DataRandomizationResult)
        assert_fits(result["similarity"]["ssim"], SimilaritySummary)


def test_prediction_metrics(setup) -> None:
    model, _, _, loader = setup
    assert_fits(robustness(model, loader, eps=(0.01,), steps=1), RobustnessResult)
    clean = calibration(model, loader)
    assert_fits(clean, CalibrationResult)
    assert_fits(clean["clean"], CalibrationMetrics)
    shifted = calibration(model, loader, corruptions=("gaussian_noise",), severities=(1,))
    assert_fits(shifted, CalibrationResult)
    assert {"corruptions", "mean"} <= set(shifted)
