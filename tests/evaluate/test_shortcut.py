"""evaluate.shortcut: shares and accuracies worked out by hand, and the testbed on trained models."""

from __future__ import annotations

import pytest
import torch
from hand_models import FixedMaps, make_pixel_model
from torch import Tensor, nn

from explainaug.data import DeviceLoader, shapes
from explainaug.evaluate import shortcut
from explainaug.explain import Explainer, GradCAM
from explainaug.models import SmallCNN
from explainaug.train import CrossEntropy, Trainer


def _masks(*pixel_lists: list[int]) -> Tensor:
    masks = torch.zeros(len(pixel_lists), 16, dtype=torch.bool)
    for row, pixels in enumerate(pixel_lists):
        masks[row, pixels] = True
    return masks.view(-1, 1, 4, 4)


class TargetPixel(Explainer):
    """All saliency on pixel ``target`` (0 or 1): tells which class was explained."""

    def _attribute(self, x: Tensor, target: Tensor | None, create_graph: bool) -> Tensor:
        maps = torch.zeros(x.shape[0], 16)
        maps[torch.arange(x.shape[0]), target] = 1.0
        return maps.view(-1, 1, 4, 4)


def test_shares_and_accuracies_by_hand() -> None:
    model = make_pixel_model()  # predicts class 1 on an all-ones image, class 0 on all zeros
    x = torch.stack([torch.ones(1, 4, 4), torch.zeros(1, 4, 4)])
    ramp = torch.arange(16.0)  # image 0: pixel i has saliency i (total 120)
    single = torch.zeros(16)
    single[6] = 1.0  # image 1: only pixel 6
    explainer = FixedMaps(model, torch.stack([ramp, single]).view(2, 1, 4, 4))
    objects, cues = _masks([0, 1, 14, 15], [5]), _masks([12, 13], [6])
    aligned = [(x, torch.tensor([1, 0]), objects, cues)]  # both right
    conflicting = [(x, torch.tensor([0, 0]), objects, cues.float())]  # first wrong
    result = shortcut(model, explainer, aligned, conflicting)
    per_set = {
        "cue_share": (25 / 120 + 1.0) / 2,
        "object_share": (30 / 120 + 0.0) / 2,
        "cue_area": (2 / 16 + 1 / 16) / 2,
        "object_area": (4 / 16 + 1 / 16) / 2,
        "n_images": 2,
    }
    assert result["aligned"] == pytest.approx({"accuracy": 1.0, **per_set})
    assert result["conflicting"] == pytest.approx({"accuracy": 0.5, **per_set})
    assert result["gap"] == pytest.approx(0.5)


def test_target_chooses_the_explained_class() -> None:
    model = make_pixel_model().train()
    x = torch.ones(1, 1, 4, 4)  # predicted class 1, labelled 0 (a conflicting image)
    batches = [(x, torch.tensor([0]), _masks([0]), _masks([1]))]
    predicted = shortcut(model, TargetPixel(model), batches, batches)
    labelled = shortcut(model, TargetPixel(model), batches, batches, target="label")
    assert predicted["conflicting"]["cue_share"] == 1.0
    assert predicted["conflicting"]["object_share"] == 0.0
    assert labelled["conflicting"]["cue_share"] == 0.0
    assert labelled["conflicting"]["object_share"] == 1.0
    assert model.training  # modes restored


def test_bad_inputs_raise() -> None:
    model = make_pixel_model()
    explainer = TargetPixel(model)
    x, y = torch.ones(1, 1, 4, 4), torch.tensor([1])
    good = [(x, y, _masks([0]), _masks([1]))]
    with pytest.raises(ValueError, match=r"aligned_loader must yield \(x, y, masks, cue_masks\)"):
        shortcut(model, explainer, [(x, y, _masks([0]))], good)
    with pytest.raises(ValueError, match="conflicting_loader yielded no batches"):
        shortcut(model, explainer, good, [])
    with pytest.raises(ValueError, match="empty mask"):
        shortcut(model, explainer, good, [(x, y, _masks([0]), torch.zeros(1, 1, 4, 4))])
    with pytest.raises(ValueError, match="target must be"):
        shortcut(model, explainer, good, good, target="cue")
    with pytest.raises(ValueError, match="different model"):
        shortcut(model, TargetPixel(make_pixel_model()), good, good)
    with pytest.raises(TypeError, match="aligned_loader must be an iterable"):
        shortcut(model, explainer, 3, good)


def _train_ce(cue_correlation: float) -> nn.Module:
    torch.manual_seed(0)
    train = shapes(n=800, size=32, cue_correlation=cue_correlation)
    model = SmallCNN(4, width=8, mean=train.mean, std=train.std)
    loader = DeviceLoader(train, 32, drop_last=True, device="cpu")
    Trainer(model, CrossEntropy(), epochs=6, lr=0.05, progress=False, device="cpu").fit(loader)
    return model


def _loader(cue_correlation: float) -> DeviceLoader:
    data = shapes(n=200, size=32, split="test", cue_correlation=cue_correlation)
    return DeviceLoader(data, 200, shuffle=False, device="cpu", cue_masks=True)


@pytest.mark.slow
def test_the_testbed_separates_a_shortcut_model_from_an_unbiased_one() -> None:
    """CE on p=1 data learns the cue (a large gap, Grad-CAM energy on the cue far above the cue's
    area); CE on p=1/K data (cue independent of the class) does neither."""
    aligned, conflicting = _loader(1.0), _loader(0.0)
    results = {}
    for p in (1.0, 0.25):
        model = _train_ce(p)
        results[p] = shortcut(model, GradCAM(model), aligned, conflicting)
    biased, unbiased = results[1.0], results[0.25]
    area = biased["conflicting"]["cue_area"]  # the cue share of a uniform map: 16 / 1024
    assert area == pytest.approx(16 / 1024)
    assert biased["gap"] > 0.6
    assert biased["conflicting"]["accuracy"] < 0.25  # below chance: it predicts the cue's class
    for kind in ("aligned", "conflicting"):
        assert biased[kind]["cue_share"] > 3 * area
        assert unbiased[kind]["cue_share"] < 1.5 * area
        assert biased[kind]["cue_share"] > 3 * unbiased[kind]["cue_share"]
    assert abs(unbiased["gap"]) < 0.1


def test_report_writes_the_shortcut_table_and_figure(tmp_path) -> None:
    from explainaug.evaluate.report import report

    torch.manual_seed(0)
    model = SmallCNN(4, width=4)
    aligned, conflicting = _loader(1.0), _loader(0.0)
    plain = DeviceLoader(shapes(n=200, size=32, split="test"), 200, shuffle=False, device="cpu")
    result = report(
        {"cnn": model},
        plain,
        tmp_path,
        evaluators=("accuracy", "shortcut"),
        explainer="gradcam",
        shortcut_loaders=(aligned, conflicting),
        grid_images=0,
        progress=False,
    )
    direct = shortcut(model, GradCAM(model), aligned, conflicting)
    written = result["models"]["cnn"]["shortcut"]
    for kind in ("aligned", "conflicting"):
        assert written[kind] == pytest.approx(direct[kind])
    assert written["gap"] == pytest.approx(direct["gap"])
    assert result["figures"] == ["shortcut.png"]
    assert (tmp_path / "shortcut.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "report.md").read_text()
    assert "## Shortcut" in text and "| accuracy (aligned) | accuracy (conflicting) |" in text
    row = [
        direct[kind][key]
        for key in ("accuracy", "cue_share", "object_share")
        for kind in ("aligned", "conflicting")
    ] + [direct["gap"], direct["aligned"]["cue_area"]]
    assert "| cnn | " + " | ".join(f"{value:.4f}" for value in row) + " |" in text
    with pytest.raises(ValueError, match="shortcut evaluator needs shortcut_loaders"):
        report({"cnn": model}, plain, tmp_path, evaluators=("shortcut",), explainer="gradcam")
