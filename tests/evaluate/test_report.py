"""The report runs every evaluator for two tiny models and writes JSON, Markdown and PNGs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from explainaug.evaluate.randomization import model_randomization
from explainaug.evaluate.report import explainer_factory, report
from explainaug.evaluate.report_writer import markdown, to_plain
from explainaug.explain import GradCAM, Saliency
from explainaug.models import SmallCNN


@pytest.fixture
def loader() -> list:
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(4, 1, 16, 16, dtype=torch.bool)
    masks[..., 4:12, 4:12] = True
    return [
        (torch.rand(4, 3, 16, 16, generator=generator), torch.tensor([0, 1, 2, 0]), masks)
        for _ in range(2)
    ]


def test_report_two_models_all_evaluators(tmp_path: Path, loader: list) -> None:
    torch.manual_seed(0)
    models = {
        "a": SmallCNN(num_classes=3, width=4).eval(),
        "b": SmallCNN(num_classes=3, width=4).train(),
    }
    result = report(
        models,
        loader,
        tmp_path,
        explainer=Saliency,
        corruptions=("gaussian_noise",),
        severities=(1, 3),
        attack="fgsm",
        eps=(2 / 255,),
        randomization_images=4,
        similarity=("spearman_abs", "spearman"),
        faithfulness_options={"deletion_steps": 4},
        grid_images=2,
        progress=False,
    )
    assert models["b"].training and not models["a"].training
    written = json.loads((tmp_path / "report.json").read_text())
    assert written == result
    assert set(written["models"]) == {"a", "b"}
    for name in ("a", "b"):
        assert set(written["models"][name]) == {
            "accuracy",
            "calibration",
            "robustness",
            "randomization",
            "faithfulness",
            "localization",
        }
        assert written["models"][name]["localization"]["n_images"] == 8
    expected = {
        "reliability.png",
        "calibration_vs_severity.png",
        "robustness.png",
        "randomization.png",
        "deletion_insertion.png",
        "saliency_grid.png",
    }
    assert set(written["figures"]) == expected
    for figure in expected:
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "report.md").read_text()
    for title in (
        "## Accuracy",
        "## Calibration",
        "## Robustness",
        "## Randomization",
        "## Faithfulness",
        "## Localization",
    ):
        assert title in text
    assert "| a |" in text and "| b |" in text


def test_report_accepts_explainer_name_and_single_model(tmp_path: Path, loader: list) -> None:
    result = report(
        SmallCNN(num_classes=3, width=4),
        loader,
        tmp_path,
        evaluators=("localization",),
        explainer="gradcam",
        grid_images=0,
        progress=False,
    )
    assert set(result["models"]) == {"model"}
    assert result["figures"] == []
    assert type(explainer_factory("GradCAM")(SmallCNN(num_classes=3, width=4))) is GradCAM


def test_json_values_are_plain() -> None:
    plain = to_plain({"x": torch.tensor([1.0, math.nan]), 2: {0.5: math.inf}})
    assert plain == {"x": [1.0, None], "2": {"0.5": None}}
    text = markdown(
        {
            "models": {
                "m": {"faithfulness": {"deletion_auc": 0.25, "n_images": 3}},
                "k": {"faithfulness": {}},
            }
        }
    )
    assert "| m | 0.2500 | 3 |" in text and "| k | n/a | n/a |" in text


def test_bad_inputs_raise(tmp_path: Path, loader: list) -> None:
    model = SmallCNN(num_classes=3, width=4)
    with pytest.raises(ValueError, match="evaluators"):
        report({"m": model}, loader, tmp_path, evaluators=("speed",))
    with pytest.raises(ValueError, match="explainer="):
        report({"m": model}, loader, tmp_path, evaluators=("faithfulness",))
    with pytest.raises(ValueError, match="unknown explainer"):
        report({"m": model}, loader, tmp_path, evaluators=("faithfulness",), explainer="lime")
    with pytest.raises(ValueError, match="non-empty"):
        report({}, loader, tmp_path)
    with pytest.raises(ValueError, match="no batches"):
        report({"m": model}, [], tmp_path, evaluators=("accuracy",), progress=False)
    with pytest.raises(ValueError, match="needs object masks"):
        report(
            {"m": model},
            [(x, y) for x, y, _ in loader],
            tmp_path,
            evaluators=("localization",),
            explainer=Saliency,
            progress=False,
        )


def test_report_randomization_compares_signed_gradients(tmp_path: Path, loader: list) -> None:
    """By name, "saliency" enters the sanity checks as the signed gradient (Adebayo's no-ABS
    maps): the signed Spearman curve then differs from the ABS one (with |gradient| both were
    the same curve), and equals a run with Saliency(abs=False) built by hand."""
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4)
    names = ("spearman_abs", "spearman")
    result = report(
        model,
        loader,
        tmp_path,
        evaluators=("randomization",),
        explainer="saliency",
        similarity=names,
        grid_images=0,
        progress=False,
    )
    curves = result["models"]["model"]["randomization"]["similarity"]
    signed, absolute = curves["spearman"]["mean"], curves["spearman_abs"]["mean"]
    gaps = [abs(a - b) for a, b in zip(signed, absolute, strict=True)]
    assert max(gaps) > 0.05, gaps
    by_hand = model_randomization(
        model, lambda m: Saliency(m, abs=False), torch.cat([b[0] for b in loader]), similarity=names
    )
    for name in names:
        assert curves[name]["mean"] == pytest.approx(by_hand["similarity"][name]["mean"])
    assert result["settings"]["randomization_explainer"] == {"name": "saliency", "abs": False}
    assert result["settings"]["explainer"] == {"name": "saliency"}
    # Adebayo et al.'s 200 images by default; the loader holds 8, and the report says so
    assert result["settings"]["randomization_images"] == 200
    text = (tmp_path / "report.md").read_text()
    assert "Images per model: model: 8 (fewer than the reference protocol's 200)" in text


def test_report_compares_several_explainers_on_one_model(tmp_path: Path, loader: list) -> None:
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4).eval()
    options = {"evaluators": ("accuracy", "localization"), "grid_images": 2, "progress": False}
    both = report(model, loader, tmp_path / "both", explainer=["gradcam", "scorecam"], **options)
    assert set(both["models"]) == {"model", "model [gradcam]", "model [scorecam]"}
    assert set(both["models"]["model"]) == {"accuracy"}
    # Each explainer's row is what a report with that explainer alone gives.
    for name in ("gradcam", "scorecam"):
        alone = report(model, loader, tmp_path / name, explainer=name, **options)
        assert (
            both["models"][f"model [{name}]"]["localization"]
            == alone["models"]["model"]["localization"]
        )
    text = (tmp_path / "both" / "report.md").read_text()
    localization = text.split("## Localization")[1]
    assert "| model [gradcam] |" in localization and "| model [scorecam] |" in localization
    accuracy = text.split("## Accuracy")[1].split("##")[0]
    assert "| model |" in accuracy and "[gradcam]" not in accuracy
    assert "saliency_grid.png" in both["figures"]
    labelled = report(model, loader, tmp_path / "labelled", explainer={"cam": GradCAM}, **options)
    assert set(labelled["models"]) == {"model", "model [cam]"}
    assert both["settings"]["explainer"] == {
        "gradcam": {"name": "gradcam"},
        "scorecam": {"name": "scorecam"},
    }
    with pytest.raises(ValueError, match="at least one explainer"):
        report(model, loader, tmp_path / "none", explainer=[], **options)


def test_a_one_shot_iterator_is_refused_up_front(tmp_path) -> None:
    """Every evaluator runs over the loader again: a generator is used up by the first one."""
    from explainaug.models import SmallCNN

    model = SmallCNN(num_classes=3, width=4).eval()
    batches = ((torch.rand(2, 3, 16, 16), torch.tensor([0, 1])) for _ in range(2))
    with pytest.raises(TypeError, match="loader must be re-iterable .* got a generator"):
        report({"m": model}, batches, tmp_path, evaluators=("accuracy", "robustness"))
