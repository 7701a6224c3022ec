"""The right-for-the-right-reasons methods as training methods: model state, masks through
augmentation, find-another-explanation, the automatic penalty scale, and the registry/CLI path."""

import json

import kornia.augmentation as K
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from explainaug.build import build_method
from explainaug.cli import main
from explainaug.data import DeviceLoader, shapes
from explainaug.losses import input_gradient_penalty
from explainaug.models import SmallCNN
from explainaug.settings import Experiment, SettingError
from explainaug.train import HINT, RRR, Annotation, RRRGradCAM, SaliencyGuidedTraining
from explainaug.train.methods.annotation import largest_gradient_region, penalty_scale

NEW = ("rrr", "sgt", "rrr-gradcam", "hint")


def _cued_batch(n=8, size=32):
    data = shapes(n=n, size=size, split="train", cue_correlation=1.0)
    return next(iter(DeviceLoader(data, n, shuffle=False, device="cpu", cue_masks=True)))


def _method(name, **settings):
    return build_method(Experiment(method=name, cue_correlation=0.95, augment=False, **settings))


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("training", [True, False])
def test_a_step_keeps_the_mode_and_moves_batchnorm_as_one_forward(name, training) -> None:
    torch.manual_seed(0)
    model = SmallCNN(num_classes=4, width=4).train(training)
    reference = SmallCNN(num_classes=4, width=4).train(training)
    reference.load_state_dict(model.state_dict())
    batch = _cued_batch()
    method = _method(name, scale_penalty=False) if name != "sgt" else _method(name)
    method.setup(model)
    loss, _ = method.training_step(model, batch, epoch=0)
    loss.backward()
    reference(batch[0])  # what one cross-entropy forward does to the statistics
    assert [m.training for m in model.modules()] == [training] * len(list(model.modules()))
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("name", NEW)
def test_the_registry_and_settings_build_each_method(name) -> None:
    method = _method(name, penalty_weight=2.0)
    expected = {"rrr": RRR, "sgt": SaliencyGuidedTraining, "rrr-gradcam": RRRGradCAM}
    assert type(method) is expected.get(name, HINT)
    assert method.weight == 2.0


def test_official_defaults() -> None:
    assert _method("rrr").weight == pytest.approx(1000 / 255**2) and not _method("rrr").scaled
    assert _method("hint").scaled and _method("rrr-gradcam").scaled
    assert _method("hint").weight == 1.0 and not _method("hint").second_order
    sgt = _method("sgt")
    assert (sgt.fraction, sgt.weight) == (0.1, 1.0)
    assert _method("edda").occlusion_ratio == 0.2


def test_masks_follow_the_images_through_the_augmentation() -> None:
    x = torch.rand(6, 3, 16, 16)
    masks = torch.rand(6, 1, 16, 16) > 0.5
    x[:, 0] = masks[:, 0].float()  # the first channel draws the mask
    augment = K.AugmentationSequential(K.RandomCrop((16, 16), padding=3), K.RandomHorizontalFlip())
    for annotation in ("cue", "object"):
        batch = (x, torch.zeros(6, dtype=torch.long), masks, masks)
        moved, _, penalised = Annotation(annotation).augmented(augment, batch)
        drawn = moved[:, :1] > 0.5
        assert not torch.equal(moved, x)  # it did move
        expected = drawn if annotation == "cue" else ~drawn
        # the padding is neither object nor cue: penalised with "object" (not the object)
        assert torch.equal(penalised.bool(), expected), annotation


def test_largest_gradient_region_is_rosss_mask_of_the_predicted_probability() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    x = torch.rand(5, 2, 4, 4)
    weight, bias = model[1].weight, model[1].bias
    with torch.no_grad():
        p = torch.softmax(x.flatten(1) @ weight.T + bias, dim=1)
        top = p.argmax(1)
        p_top = p.gather(1, top[:, None])
        # d p_c / dx = p_c (W_c - sum_j p_j W_j)
        grads = (p_top * (weight[top] - p @ weight)).abs().view(5, 2, 4, 4)
        largest = grads.flatten(1).amax(1).view(-1, 1, 1, 1)
        oracle = (grads > 0.67 * largest).any(dim=1, keepdim=True).float()
    assert torch.equal(largest_gradient_region(model, x), oracle)


def test_find_another_explanation_penalises_the_previous_models_largest_gradients() -> None:
    torch.manual_seed(0)
    previous = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    with torch.no_grad():
        previous[1].weight.zero_()
        previous[1].weight.view(4, 3, 8, 8)[:, :, 2, 5] = torch.arange(4.0)[:, None]
    method = RRR(annotation="previous", previous_runs=[previous])
    model = SmallCNN(num_classes=4, width=4)
    method.setup(model)
    batch = (torch.rand(3, 3, 8, 8), torch.tensor([0, 1, 2]))
    x, _, region = method.annotation.augmented(None, batch)
    expected = torch.zeros(3, 1, 8, 8)
    expected[:, :, 2, 5] = 1  # the only pixel the previous model looks at
    assert torch.equal(region, expected)
    loss, metrics = method.training_step(model, batch, epoch=0)
    _, penalty = input_gradient_penalty(model, x, expected)
    assert metrics["penalty"].item() == pytest.approx(method.weight * penalty.item(), rel=1e-4)


def test_the_automatic_scale_is_the_ratio_of_sums_over_one_pass_and_is_checkpointed() -> None:
    torch.manual_seed(0)
    model = SmallCNN(num_classes=4, width=4)
    data = shapes(n=16, size=32, split="train", cue_correlation=0.95)
    loader = DeviceLoader(data, 8, shuffle=False, device="cpu", cue_masks=True)
    method = _method("rrr-gradcam", penalty_weight=3.0)
    method.setup(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method.begin(model, loader)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    ce, penalty = [], []
    for batch in loader:  # by hand: the same terms, unscaled
        logits, y, term = method._terms(model, batch)
        ce.append(F.cross_entropy(logits, y).item())
        penalty.append(term.item())
    assert method.scale.item() == pytest.approx(sum(ce) / sum(penalty), rel=1e-4)
    _, metrics = method.training_step(model, next(iter(loader)), epoch=0)
    assert metrics["penalty"].item() == pytest.approx(3.0 * method.scale.item() * penalty[0], 1e-3)
    resumed = _method("rrr-gradcam", penalty_weight=3.0)
    resumed.load_state_dict(method.state_dict())
    assert resumed.effective_weight == method.effective_weight
    with pytest.raises(ValueError, match="sums to 0"):
        penalty_scale([(torch.tensor(1.0), torch.tensor(0.0))], torch.device("cpu"))


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"method": "rrr"}, "annotation cue needs cue masks"),
        ({"method": "hint", "annotation": "previous"}, "previous needs previous_runs"),
        ({"method": "hint", "dataset": "digits", "annotation": "object"}, "object needs object"),
        ({"method": "ce", "previous_runs": "a"}, "previous_runs needs annotation previous"),
        ({"method": "ce", "masks": "a"}, "masks needs dataset folder"),
    ],
)
def test_settings_refuse_missing_annotations(settings, message) -> None:
    with pytest.raises(SettingError, match=message):
        Experiment(**settings).validate()


def test_train_rrr_from_the_command_line(tmp_path, capsys) -> None:
    args = ["--epochs", "1", "--train-size", "32", "--batch-size", "16", "--width", "4"]
    args += ["--cue-correlation", "0.95", "--no-progress", "--penalty-weight", "0.5"]
    assert main(["train", "--method", "rrr", *args, "--out", str(tmp_path / "r0")]) == 0
    assert "rrr on shapes: test accuracy" in capsys.readouterr().out
    settings = json.loads((tmp_path / "r0" / "run.json").read_text())["settings"]
    assert settings["annotation"] == "cue" and settings["penalty_weight"] == 0.5
    previous = ["--annotation", "previous", "--previous-runs", str(tmp_path / "r0")]
    assert main(["train", "--method", "rrr", *args, *previous, "--out", str(tmp_path / "r1")]) == 0
    assert main(["train", "--method", "rrr", "--epochs", "1", "--no-progress"]) == 2
    assert "--annotation cue needs cue masks" in capsys.readouterr().err


def test_the_demo_trains_mask_methods_on_cue_masks_where_there_is_a_cue() -> None:
    from explainaug.demo import DEMO_SETTINGS, demo_experiment, pairs, trained_with

    cued = demo_experiment("hint", "shapes", 0, 3, cue_correlation=0.95)
    plain = demo_experiment("hint", "shapes", 0, 3)
    assert (trained_with(cued), trained_with(plain)) == ("object masks", "object masks")
    rrr = demo_experiment("rrr", "shapes", 0, 3, cue_correlation=0.95)
    assert trained_with(rrr) == "cue masks"
    assert trained_with(demo_experiment("rrr", "shapes", 0, 3)) == "object masks"
    assert trained_with(demo_experiment("sgt", "shapes", 0, 3)) == "labels only"
    for name, settings in DEMO_SETTINGS.items():
        assert all(getattr(cued if name == "hint" else demo_experiment(
            name, "shapes", 0, 3, cue_correlation=0.95), key) == value
            for key, value in settings.items())  # fmt: skip
    assert pairs(["ce", "supcon", "excon", "rrr", "hint"]) == [
        ("excon", "supcon"), ("supcon", "ce"), ("excon", "ce"), ("rrr", "ce"), ("hint", "ce"),
    ]  # fmt: skip
