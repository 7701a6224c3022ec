"""Calibration metrics against torchmetrics and hand computation; temperature scaling; sweeps."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassCalibrationError

import explainaug.data.corruptions as corruptions
from explainaug.evaluate.calibration import (
    brier_score,
    calibration,
    expected_calibration_error,
    fit_temperature,
    reliability_diagram,
)


class FixedLogits(nn.Module):
    """A 'model' whose input images carry its logits: x [B, K, 1, 1] -> x [B, K] * scale."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale), requires_grad=False)

    def forward(self, x):
        return x.flatten(1) * self.scale


def logit_loader(logits, labels, batch_size=64):
    images = logits[:, :, None, None]
    return [
        (images[i : i + batch_size], labels[i : i + batch_size])
        for i in range(0, len(labels), batch_size)
    ]


def random_case(n=200, k=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, k, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    return logits.softmax(dim=1), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_bins", [15, 4])
def test_ece_matches_torchmetrics(seed, n_bins):
    probs, labels = random_case(seed=seed)
    expected = MulticlassCalibrationError(num_classes=7, n_bins=n_bins, norm="l1")(probs, labels)
    assert torch.allclose(expected_calibration_error(probs, labels, n_bins), expected, atol=1e-6)


def test_ece_matches_torchmetrics_with_confidence_exactly_one():
    probs = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.3, 0.2], [0.2, 0.7, 0.1]])
    labels = torch.tensor([0, 1, 0, 2])
    expected = MulticlassCalibrationError(num_classes=3, n_bins=15, norm="l1")(probs, labels)
    assert torch.allclose(expected_calibration_error(probs, labels), expected, atol=1e-7)


def test_ece_by_hand():
    # bins of width 0.5: [0, .5) holds conf .4 (wrong); [.5, 1) holds .9 (right), .6 (wrong),
    # .7 (right). ECE = 1/4 * |0.4 - 0| + 3/4 * |(.9 + .6 + .7)/3 - 2/3|
    probs = torch.tensor([[0.4, 0.3, 0.3], [0.9, 0.05, 0.05], [0.6, 0.4, 0.0], [0.1, 0.7, 0.2]])
    labels = torch.tensor([1, 0, 1, 1])
    expected = 0.25 * 0.4 + 0.75 * abs(2.2 / 3 - 2 / 3)
    assert float(expected_calibration_error(probs, labels, n_bins=2)) == pytest.approx(expected)


def test_ece_zero_for_perfectly_calibrated_bins():
    # confidence 0.75 and exactly 3 of 4 correct
    probs = torch.tensor([[0.75, 0.25]] * 4)
    labels = torch.tensor([0, 0, 0, 1])
    assert float(expected_calibration_error(probs, labels)) == pytest.approx(0.0, abs=1e-7)


def test_brier_by_hand_and_formula():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = torch.tensor([0, 1])
    by_hand = ((0.3**2 + 0.2**2 + 0.1**2) + (0.1**2 + 0.9**2 + 0.8**2)) / 2
    assert float(brier_score(probs, labels)) == pytest.approx(by_hand)
    probs, labels = random_case()
    onehot = F.one_hot(labels, 7).float()
    assert torch.allclose(brier_score(probs, labels), ((probs - onehot) ** 2).sum(1).mean())
    # Ovadia et al.'s code reports ||p||^2 - 2 p_y, which is Brier - 1
    ovadia = (probs.square().sum(1) - 2 * probs.gather(1, labels[:, None]).squeeze(1)).mean()
    assert float(brier_score(probs, labels)) == pytest.approx(float(ovadia) + 1, abs=1e-6)


def test_reliability_diagram_by_hand_and_counts():
    probs = torch.tensor([[0.4, 0.3, 0.3], [0.9, 0.05, 0.05], [0.6, 0.4, 0.0], [1.0, 0.0, 0.0]])
    labels = torch.tensor([1, 0, 1, 0])
    diagram = reliability_diagram(probs, labels, n_bins=2)
    assert diagram["count"].tolist() == [1.0, 3.0]
    assert torch.allclose(diagram["confidence"], torch.tensor([0.4, 2.5 / 3]))
    assert torch.allclose(diagram["accuracy"], torch.tensor([0.0, 2 / 3]))
    assert diagram["edges"].tolist() == [0.0, 0.5, 1.0]
    probs, labels = random_case(n=333)
    diagram = reliability_diagram(probs, labels, n_bins=15)
    assert diagram["count"].sum() == 333 and diagram["count"].shape == (15,)
    # weighted accuracy of the bins is the overall accuracy
    accuracy = (probs.argmax(1) == labels).float().mean()
    assert torch.allclose((diagram["accuracy"] * diagram["count"]).sum() / 333, accuracy)


@pytest.mark.parametrize(
    "bad_probs, bad_labels, message",
    [
        (torch.tensor([[0.5, 0.6]]), torch.tensor([0]), "sum to 1"),
        (torch.tensor([[2.0, -1.0]]), torch.tensor([0]), r"\[0, 1\]"),
        (torch.tensor([[float("nan"), 0.5]]), torch.tensor([0]), "NaN"),
        (torch.tensor([[0.5, 0.5]]), torch.tensor([0, 1]), "shape"),
        (torch.tensor([[0.5, 0.5]]), torch.tensor([2]), "lie in"),
        (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), "N >= 1"),
        (torch.tensor([0.5, 0.5]), torch.tensor([0]), "shape"),
    ],
)
def test_metric_functions_reject_bad_input(bad_probs, bad_labels, message):
    for metric in (expected_calibration_error, brier_score, reliability_diagram):
        with pytest.raises(ValueError, match=message):
            metric(bad_probs, bad_labels)


def test_metric_functions_reject_float_labels_and_bad_bins():
    probs = torch.tensor([[0.5, 0.5]])
    with pytest.raises(TypeError, match="integer"):
        brier_score(probs, torch.tensor([0.0]))
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(probs, torch.tensor([0]), n_bins=0)


def calibrated_case(n=20000, k=10, seed=0):
    """Logits whose softmax is the true label distribution (labels drawn from it)."""
    g = torch.Generator().manual_seed(seed)
    true_logits = 2 * torch.randn(n, k, generator=g)
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
    return true_logits, labels


def test_fit_temperature_recovers_known_temperature():
    true_logits, labels = calibrated_case()
    loader = logit_loader(true_logits, labels, batch_size=4096)
    temperature = fit_temperature(FixedLogits(3.0), loader)
    assert temperature == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(FixedLogits(0.5), loader) == pytest.approx(0.5, rel=0.05)


def test_temperature_fit_lowers_nll_of_overconfident_model():
    true_logits, labels = calibrated_case(n=4000, seed=1)
    val = logit_loader(true_logits[:2000], labels[:2000], 500)
    test = logit_loader(true_logits[2000:], labels[2000:], 500)
    model = FixedLogits(4.0)
    raw = calibration(model, test)
    scaled = calibration(model, test, temperature="fit", val_loader=val)
    assert scaled["temperature"] > 2.5
    assert scaled["clean"]["nll"] < raw["clean"]["nll"] - 0.1
    assert scaled["clean"]["ece"] < raw["clean"]["ece"]
    assert scaled["clean"]["accuracy"] == raw["clean"]["accuracy"]  # T keeps the argmax
    # a fixed temperature divides the logits
    fixed = calibration(model, test, temperature=4.0)
    nll = F.cross_entropy(true_logits[2000:], labels[2000:])
    assert fixed["clean"]["nll"] == pytest.approx(float(nll), rel=1e-5)


def test_calibration_clean_metrics_match_functions():
    logits, labels = 2 * torch.randn(300, 5), torch.randint(0, 5, (300,))
    model = FixedLogits().train()
    result = calibration(model, logit_loader(logits, labels, 64))
    assert model.training  # mode restored
    probs = logits.softmax(1)
    clean = result["clean"]
    assert result["temperature"] == 1.0 and clean["count"] == 300
    assert clean["ece"] == pytest.approx(float(expected_calibration_error(probs, labels)), abs=1e-6)
    assert clean["brier"] == pytest.approx(float(brier_score(probs, labels)), abs=1e-6)
    assert clean["nll"] == pytest.approx(float(F.cross_entropy(logits, labels)), abs=1e-5)
    assert clean["accuracy"] == pytest.approx(float((logits.argmax(1) == labels).float().mean()))
    assert sum(clean["reliability"]["count"]) == 300
    assert "corruptions" not in result


def image_model_and_loader():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    x = torch.rand(24, 3, 8, 8)
    y = torch.randint(0, 4, (24,))
    return model, [(x[:12], y[:12]), (x[12:], y[12:])]


def test_calibration_over_corruptions_returns_every_cell_and_mean():
    model, loader = image_model_and_loader()
    names = list(corruptions.CORRUPTIONS[:2])
    result = calibration(model, loader, corruptions=names, severities=(1, 5))
    assert set(result["corruptions"]) == set(names)
    cells = [cell for name in names for cell in result["corruptions"][name].values()]
    for name in names:
        assert set(result["corruptions"][name]) == {1, 5}
    for key in ("accuracy", "ece", "nll", "brier"):
        assert result["mean"][key] == pytest.approx(sum(c[key] for c in cells) / len(cells))
    for cell in cells:
        assert cell["count"] == 24 and sum(cell["reliability"]["count"]) == 24
    # seeded: the same call gives the same numbers
    again = calibration(model, loader, corruptions=names, severities=(1, 5))
    assert again["mean"] == result["mean"]


def test_calibration_all_corruptions_cover_the_fifteen():
    model, loader = image_model_and_loader()
    result = calibration(model, loader[:1], corruptions="all", severities=(3,))
    assert tuple(result["corruptions"]) == tuple(corruptions.CORRUPTIONS)
    assert len(corruptions.CORRUPTIONS) == 15
    assert all(math.isfinite(result["mean"][key]) for key in ("ece", "nll", "brier"))


def test_calibration_corrupts_on_the_fly_with_the_named_corruption():
    model, loader = image_model_and_loader()
    name = corruptions.CORRUPTIONS[0]
    generator = torch.Generator().manual_seed(0)
    corrupted = [(corruptions.corrupt(x, name, 4, generator=generator), y) for x, y in loader]
    expected = calibration(model, corrupted)["clean"]
    got = calibration(model, loader, corruptions=[name], severities=(4,))["corruptions"][name][4]
    assert got["nll"] == pytest.approx(expected["nll"], rel=1e-5)


def test_calibration_rejects_bad_arguments():
    model, loader = image_model_and_loader()
    with pytest.raises(ValueError, match="no batches"):
        calibration(model, [])
    with pytest.raises(ValueError, match="val_loader"):
        calibration(model, loader, temperature="fit")
    with pytest.raises(ValueError, match="temperature"):
        calibration(model, loader, temperature="hot")
    with pytest.raises(ValueError, match="> 0"):
        calibration(model, loader, temperature=-1.0)
    with pytest.raises(ValueError, match="only used"):
        calibration(model, loader, val_loader=loader)
    with pytest.raises(ValueError, match="shape"):
        calibration(model, [(torch.rand(4, 3, 8, 8), torch.tensor([0, 1]))])
    with pytest.raises(ValueError, match="n_bins"):
        calibration(model, loader, n_bins=0)
    with pytest.raises(ValueError, match="corruptions"):
        calibration(model, loader, corruptions=["no_such_corruption"])
    with pytest.raises(ValueError, match="severities"):
        calibration(model, loader, corruptions="all", severities=(0,))
    with pytest.raises(TypeError, match="re-iterable"):
        calibration(model, iter(loader), corruptions="all")


@pytest.mark.gpu
def test_calibration_sweep_on_cuda_matches_cpu_clean_metrics():
    model, loader = image_model_and_loader()
    cpu = calibration(model, loader)
    gpu = calibration(
        model.cuda(),
        loader,
        corruptions="all",
        severities=(1,),
        temperature="fit",
        val_loader=loader,
    )
    assert len(gpu["corruptions"]) == 15
    unscaled = calibration(model, loader)["clean"]
    assert unscaled["nll"] == pytest.approx(cpu["clean"]["nll"], rel=1e-4)
    assert gpu["clean"]["accuracy"] == pytest.approx(cpu["clean"]["accuracy"])
