import dataclasses
import json

import pytest
import torch
from scipy import ndimage

from explainaug.build import build_method, build_model, load_split
from explainaug.data import make_loader
from explainaug.evaluate import accuracy
from explainaug.experiment import run
from explainaug.models import ContrastiveModel, SmallCNN
from explainaug.registry import EXPLAINERS, METHODS
from explainaug.runs import load_run
from explainaug.settings import Experiment
from explainaug.train import EDDA, CrossEntropy, ExCon, RandomOcclusionControl, SupCon, Trainer

TINY = dict(width=4, epochs=1, batch_size=8, train_size=16, image_size=16, amp=None)


@pytest.mark.parametrize(
    ("method", "kind"),
    [
        ("ce", CrossEntropy),
        ("supcon", SupCon),
        ("excon", ExCon),
        ("edda", EDDA),
        ("random-occlusion", RandomOcclusionControl),
    ],
)
def test_each_method_gets_its_class_and_model(method, kind) -> None:
    experiment = Experiment(method=method, **TINY).validate()
    model = build_model(experiment, 4, (0.5,) * 3, (0.25,) * 3)
    assert isinstance(model, ContrastiveModel) == (method in ("supcon", "excon"))
    assert isinstance(build_method(experiment), kind)
    assert experiment.learning_rate == (0.5 if method in ("supcon", "excon") else 0.1)


def test_cam_layer_is_relative_to_the_backbone() -> None:
    experiment = Experiment(method="excon", cam_layer="block2", **TINY)
    model = build_model(experiment, 4, (0.5,) * 3, (0.25,) * 3)
    method = build_method(experiment)
    method.setup(model)
    assert method.live_explainer.layer_name == "encoder.block2"
    plain = Experiment(method="edda", cam_layer="block2", **TINY)
    cnn = build_model(plain, 4, (0.5,) * 3, (0.25,) * 3)
    edda = build_method(plain)
    edda.setup(cnn)
    assert edda.live_explainer.layer_name == "block2"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"method": "mixup"}, "method must be one of ce, supcon, .*, got 'mixup'"),
        ({"dataset": "cifar100"}, "root is needed by dataset 'cifar100'"),
        ({"epochs": 0}, "epochs must be an int >= 1, got 0"),
        (
            {"explain_warmup_epochs": 5},
            r"explain_warmup_epochs must be an int in \[0, epochs = 1\]",
        ),
        ({"occlusion_ratio": 1.0}, "occlusion_ratio must be a number in"),
        ({"lr": 0.0}, r"lr must be a number > 0, got 0.0"),
        ({"explain_warmup_epochs": True}, "explain_warmup_epochs must be an int in"),
        ({"linear_epochs": 1.5}, "linear_epochs must be an int >= 0"),
        ({"salient_target": "bogus"}, "salient_target must be one of uniform, .*, got 'bogus'"),
        ({"amp": "fp8"}, "amp must be one of auto, bf16, fp16, none, got 'fp8'"),
        ({"model": "resnet17"}, "model must be one of small-cnn, .*, got 'resnet17'"),
        ({"seed": -1}, "seed must be an int in"),
        ({"weight_decay": float("nan")}, "weight_decay must be a finite number >= 0, got nan"),
        ({"cam_layer": 3}, "cam_layer must be none or a string, got 3"),
        ({"augment": "yes"}, "augment must be True or False, got 'yes'"),
    ],
)
def test_validation_names_the_bad_field(changes, match) -> None:
    with pytest.raises(ValueError, match=match):
        Experiment(**{**TINY, **changes}).validate()


def test_run_writes_a_run_that_load_run_rebuilds(tmp_path) -> None:
    experiment = Experiment(method="supcon", **TINY)
    result = run(experiment, out_dir=tmp_path, device="cpu", progress=False)
    description = json.loads((tmp_path / "run.json").read_text())
    assert description["settings"] == dataclasses.asdict(experiment)
    assert description["num_classes"] == description["real_classes"] == 4
    assert description["model"]["name"] == "small-cnn" and description["model"]["contrastive"]
    model, loaded = load_run(tmp_path)
    assert loaded == experiment and isinstance(model, ContrastiveModel) and not model.training
    x = torch.rand(3, 3, 16, 16)
    result.model.eval()
    torch.testing.assert_close(model(x), result.model(x))


def test_load_run_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_run(tmp_path)
    run(Experiment(**TINY), out_dir=tmp_path, device="cpu", progress=False)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid run description"):
        load_run(tmp_path)
    description = {
        "settings": dataclasses.asdict(Experiment(**TINY)),
        "model": build_model(Experiment(**{**TINY, "width": 8}), 4, (0,) * 3, (1,) * 3).model_spec,
        "num_classes": 4,
    }
    (tmp_path / "run.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match="does not fit this SmallCNN"):
        load_run(tmp_path / "checkpoint.pt")
    (tmp_path / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="checkpoint"):
        load_run(tmp_path)


def test_every_method_is_buildable_on_a_resnet() -> None:
    for method in METHODS:
        experiment = Experiment(method=method, model="resnet18", **TINY)
        model = build_model(experiment, 3, (0.5,) * 3, (0.25,) * 3)
        build_method(experiment).setup(model)
    assert isinstance(build_model(Experiment(**TINY), 3, (0.5,) * 3, (0.25,) * 3), SmallCNN)


@pytest.mark.parametrize(
    "name",
    [
        "saliency",
        "inputxgradient",
        "guidedbackprop",
        "gradcamplusplus",
        "xgradcam",
        "hirescam",
        "layercam",
        "eigencam",
        "scorecam",
        "rise",
        "occlusion",
    ],
)
def test_other_explainers_drive_edda_and_excon(name) -> None:
    for method in ("edda", "excon"):
        experiment = Experiment(method=method, explainer=name, cam_layer="block2", **TINY)
        model = build_model(experiment.validate(), 4, (0.5,) * 3, (0.25,) * 3)
        built = build_method(experiment)
        built.setup(model)
        assert type(built.live_explainer).__name__.lower() == name
        assert built.live_explainer.model is model and not built.live_explainer.check_values
        if EXPLAINERS[name].takes_layer:
            expected = "encoder.block2" if method == "excon" else "block2"
            assert built.live_explainer.layer_name == expected
    with pytest.raises(ValueError, match="explainer must be one of saliency, .*, got 'nosuch'"):
        Experiment(explainer="nosuch", **TINY).validate()


def test_linear_evaluation_replaces_the_probe_and_is_what_load_run_returns(tmp_path) -> None:
    experiment = Experiment(method="supcon", linear_epochs=2, linear_lr=0.5, **TINY)
    result = run(experiment, out_dir=tmp_path, device="cpu", progress=False)
    via_checkpoint_path, _ = load_run(tmp_path / "checkpoint.pt")  # model.pt beside it wins
    (tmp_path / "model.pt").rename(tmp_path / "moved.pt")
    trained_probe, _ = load_run(tmp_path)  # without model.pt: the checkpoint's online probe
    (tmp_path / "moved.pt").rename(tmp_path / "model.pt")
    final, _ = load_run(tmp_path)
    assert torch.equal(final.classifier.weight, result.model.classifier.weight)
    assert torch.equal(final.encoder.block1[0].weight, trained_probe.encoder.block1[0].weight)
    assert not torch.equal(final.classifier.weight, trained_probe.classifier.weight)
    assert torch.equal(via_checkpoint_path.classifier.weight, final.classifier.weight)


def test_excon_masks_from_the_epoch_after_its_warmup() -> None:
    """explain_warmup_epochs=2 is the official --exp_epochs 3: masking in the 3rd epoch."""
    experiment = Experiment(method="excon", **{**TINY, "epochs": 3, "explain_warmup_epochs": 2})
    history = run(experiment, device="cpu", progress=False).history
    assert ["masked_kept" in record for record in history] == [False, False, True]


def test_final_epoch_accuracy_by_default_best_over_epochs_only_when_named() -> None:
    settings = {**TINY, "epochs": 3}
    default = run(Experiment(method="supcon", **settings), device="cpu", progress=False)
    assert default.best_test_accuracy is None
    assert all("head_loss" in record for record in default.history)  # alternating head epochs
    named = run(
        Experiment(method="supcon", report_best_epoch=True, **settings),
        device="cpu",
        progress=False,
    )
    per_epoch = [record["test_accuracy"] for record in named.history]
    assert named.best_test_accuracy == max(per_epoch)
    assert named.test_accuracy == per_epoch[-1]  # the reported accuracy stays the final one


def test_edda_background_target_trains_k_plus_1_logits_and_evaluates_k(tmp_path) -> None:
    """K = 4 shape classes: training sees 5 logits and sends salient occlusions to column 4
    (not to class 3); the trained and reloaded models answer with the 4 real classes."""
    experiment = Experiment(method="edda", salient_target="background", **TINY)
    method = build_method(experiment)
    model = build_model(experiment, 4, (0.5,) * 3, (0.25,) * 3, method.extra_logits)
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 0, 1])
    logits = model(x)
    assert logits.shape == (6, 5)
    loss = method.loss
    torch.testing.assert_close(
        loss.components(logits, logits, logits, y)["salient"],
        torch.nn.functional.cross_entropy(logits, torch.full_like(y, 4)),
    )

    result = run(experiment, out_dir=tmp_path, device="cpu", progress=False)
    loaded, _ = load_run(tmp_path)
    assert loaded.fc.out_features == 5  # the background row is trained and kept
    result.model.eval()
    assert result.model(x).shape == loaded(x).shape == (6, 4)
    torch.testing.assert_close(loaded(x), result.model(x))
    test_loader = make_loader(load_split(experiment, "test"), 4, shuffle=False, device="cpu")
    with torch.no_grad():  # a dominant background logit changes nothing: it is not a class
        loaded.fc.bias[4] = 1e4
    assert accuracy(loaded, test_loader, topk=(1,), per_class=False)["top1"] == pytest.approx(
        result.test_accuracy
    )
    images, labels = next(iter(test_loader))[:2]
    predicted = loaded(images).argmax(dim=1)
    assert predicted.max() < 4 and labels.max() < 4


def test_random_occlusion_control_differs_from_edda_only_in_placement() -> None:
    """Through Experiment: same area, contiguous regions, same fill as EDDA; both occluded
    views keep their label (plain occlusion augmentation); EDDA's targets are an ablation."""
    experiment = Experiment(method="random-occlusion", augment=False, **{**TINY, "image_size": 32})
    model = build_model(experiment, 4, (0.5, 0.4, 0.3), (0.25,) * 3)
    method = build_method(experiment)
    method.setup(model)
    edda = build_method(dataclasses.replace(experiment, method="edda"))
    edda.setup(model)
    fed: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda module, args: fed.append(args[0].detach()))
    torch.manual_seed(0)
    x, y = torch.rand(8, 3, 32, 32) * 0.1 + 0.8, torch.tensor([0, 1, 2, 3] * 2)
    loss, _ = method.training_step(model, (x, y), epoch=0)
    clean, *occluded = fed[-1].chunk(3)
    assert torch.equal(clean, x)
    logits = model(fed[-1]).chunk(3)  # the same fused forward (BatchNorm batch statistics)
    expected = sum(torch.nn.functional.cross_entropy(out, y) for out in logits)
    torch.testing.assert_close(loss, expected)  # every view trained towards its label

    fill = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    edda_views = edda.occlude(model, x, y)
    for view, edda_view in zip(occluded, edda_views, strict=True):
        hit = (view != x).any(dim=1)
        assert hit.sum((1, 2)).tolist() == (edda_view != x).any(dim=1).sum((1, 2)).tolist()
        assert hit.sum((1, 2)).tolist() == [round(0.2 * 32 * 32)] * 8
        torch.testing.assert_close(view, torch.where(hit[:, None], fill, x))  # EDDA's fill
        regions = [ndimage.label(mask)[1] for mask in hit.numpy()]
        assert max(regions) <= 5  # contiguous regions, not ~100 scattered pixels

    ablation = dataclasses.replace(experiment, control_targets="edda", salient_target="smooth")
    assert build_method(ablation).loss.salient_target == "smooth"
    background = dataclasses.replace(ablation, salient_target="background")
    assert build_method(background).extra_logits == 1
    plain = dataclasses.replace(experiment, salient_target="background")
    assert build_method(plain).extra_logits == 0


def test_background_logit_is_not_a_prediction_in_per_epoch_accuracy(tmp_path) -> None:
    """Per-epoch test accuracy (``report_best_epoch``, metrics.csv) and the training
    accuracies score the K real classes, as the final test accuracy does."""
    experiment = Experiment(  # no augmentation: the step's metric sees the images given
        method="edda", salient_target="background", report_best_epoch=True, augment=False, **TINY
    )
    result = run(experiment, out_dir=tmp_path, device="cpu", progress=False)
    # one epoch, no linear evaluation: the epoch's model is the final model
    assert result.best_test_accuracy == pytest.approx(result.test_accuracy)

    method = build_method(experiment)
    model = build_model(experiment, 4, (0.5,) * 3, (0.25,) * 3, method.extra_logits)
    trainer = Trainer(model, method, epochs=1, device="cpu", progress=False)
    with torch.no_grad():  # the background column wins every argmax over K + 1 logits
        model.fc.bias[4] = 1e4
    test_loader = make_loader(load_split(experiment, "test"), 4, shuffle=False, device="cpu")
    model.eval()  # as Trainer.evaluate; batch-norm statistics independent of the batch
    hits = [(model(x)[:, :4].argmax(dim=1) == y).float() for x, y, *_ in test_loader]
    real = float(torch.cat(hits).mean())
    assert real > 0 and trainer.evaluate(test_loader) == pytest.approx(real)
    x, y = next(iter(test_loader))[:2]
    _, metrics = method.training_step(model, (x, y), epoch=0)
    assert metrics["accuracy"] == pytest.approx(
        float((model(x)[:, :4].argmax(1) == y).float().mean())
    )
