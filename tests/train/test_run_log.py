"""What a Trainer run leaves behind: summary lines, metrics.csv, TensorBoard, run.json that
``explainaug evaluate`` reads (also for runs trained from Python)."""

import csv
import json
import logging

import pytest
import torch

from explainaug.cli import main
from explainaug.data import image_folder, make_loader
from explainaug.models import SmallCNN, build_model
from explainaug.train import EDDA, ExCon, Trainer


def _python_run(root, out_dir, tensorboard=False):
    train = image_folder(root, "train", size=16)
    val = image_folder(root, "test", size=16)
    model = build_model("torchvision:resnet18", train.num_classes, mean=train.mean, std=train.std)
    trainer = Trainer(
        model,
        EDDA(cam_layer="layer2"),  # 2x2 maps at 16 px (layer3 and layer4: 1x1)
        epochs=2,
        lr=0.01,
        out_dir=out_dir,
        progress=False,
        device="cpu",
        tensorboard=tensorboard,
    )
    loader = make_loader(train, 6, device="cpu")
    history = trainer.fit(loader, make_loader(val, 6, shuffle=False, device="cpu"))
    return model, val, history


def test_trainer_run_logs_and_evaluates_from_the_cli(tmp_path, write_image_folder, caplog, capsys):
    root = write_image_folder(tmp_path / "data")
    out = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="explainaug"):
        model, val, history = _python_run(root, out)
    lines = [m for m in caplog.messages if m.startswith("epoch ")]
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  loss ")
    assert f"test acc {history[1]['test_accuracy']:.4f}" in lines[1]
    assert f"train acc {history[1]['accuracy']:.4f}" in lines[1]
    with open(out / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["loss"]) for row in rows] == [record["loss"] for record in history]
    assert [float(row["test_accuracy"]) for row in rows] == [r["test_accuracy"] for r in history]
    description = json.loads((out / "run.json").read_text())
    assert description["model"]["name"] == "torchvision:resnet18"
    settings = description["settings"]
    assert description["num_classes"] == 3 and settings["method"] == "edda"
    assert (settings["explainer"], settings["cam_layer"]) == ("gradcam", "layer2")
    assert "dataset" not in settings  # the Trainer knows no data: evaluate asks for it

    evaluate = ["evaluate", str(out), "--evaluators", "accuracy", "faithfulness", "--device", "cpu"]
    assert main(evaluate) == 2
    assert "names no data" in capsys.readouterr().err
    data = ["--dataset", "folder", "--data", str(root), "--image-size", "16"]
    assert main(evaluate + data + ["--out", str(tmp_path / "report")]) == 0
    results = json.loads((tmp_path / "report" / "report.json").read_text())["models"]["edda"]
    model.eval()
    with torch.no_grad():
        predicted = model(val.images.float() / 255).argmax(dim=1)
    assert results["accuracy"]["top1"] == (predicted == val.labels).float().mean().item()
    assert 0 <= results["faithfulness"]["deletion_auc"] <= 1


def test_tensorboard_events(tmp_path, write_image_folder):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = write_image_folder(tmp_path / "data")
    _, _, history = _python_run(root, tmp_path / "run", tensorboard=True)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    losses = [event.value for event in events.Scalars("loss")]
    assert losses == pytest.approx([record["loss"] for record in history])


def test_a_wrapped_classifier_keeps_its_spec_and_evaluates_from_the_cli(
    tmp_path, write_image_folder, capsys
):
    """ExCon wraps a plain build_model classifier in a ContrastiveModel (the README's own-data
    example): run.json must still describe the model, so `explainaug evaluate` rebuilds it."""
    root = write_image_folder(tmp_path / "data")
    train = image_folder(root, "train", size=16)
    model = build_model("small-cnn", train.num_classes, width=4, mean=train.mean, std=train.std)
    out = tmp_path / "run"
    trainer = Trainer(
        model, ExCon(explain_warmup_epochs=0), epochs=1, lr=0.01, out_dir=out, progress=False
    )
    trainer.fit(make_loader(train, 6, device="cpu"))
    spec = json.loads((out / "run.json").read_text())["model"]
    assert spec["name"] == "small-cnn" and spec["contrastive"] is True
    data = ["--dataset", "folder", "--data", str(root), "--image-size", "16", "--device", "cpu"]
    report = tmp_path / "report"
    assert (
        main(["evaluate", str(out), "--evaluators", "accuracy", *data, "--out", str(report)]) == 0
    )
    val = image_folder(root, "test", size=16)
    wrapped = trainer.model.eval()
    with torch.no_grad():
        expected = (wrapped(val.images.float() / 255).argmax(dim=1) == val.labels).float().mean()
    top1 = json.loads((report / "report.json").read_text())["models"]["excon"]["accuracy"]["top1"]
    assert top1 == expected.item()


def test_a_model_from_elsewhere_is_named_as_such(tmp_path, write_image_folder, capsys):
    root = write_image_folder(tmp_path / "data")
    train = image_folder(root, "train", size=16)
    model = SmallCNN(num_classes=train.num_classes, width=4)  # not from build_model: no spec
    out = tmp_path / "run"
    Trainer(
        model, ExCon(explain_warmup_epochs=0), epochs=1, lr=0.01, out_dir=out, progress=False
    ).fit(make_loader(train, 6, device="cpu"))
    data = ["--dataset", "folder", "--data", str(root), "--image-size", "16", "--device", "cpu"]
    assert main(["evaluate", str(out), *data]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "records no model spec: the model was not built by explainaug.models.build_model" in err


def test_a_trainer_run_with_a_probed_layer_and_a_background_class_evaluates(tmp_path, capsys):
    """From Python: EDDA with the background target (K + 1 outputs) on torchvision's ResNet-18 at
    16 px, whose default layer4 is 1x1 (the probe moves the CAM to layer2). run.json must let
    `explainaug evaluate` rebuild the K-class model and explain the layer that trained."""
    from explainaug.data.load import load_dataset
    from explainaug.losses import EDDALoss

    train = load_dataset("shapes", "train", size=16, train_size=16)
    test = load_dataset("shapes", "test", size=16)  # what evaluate --dataset shapes reads
    model = build_model("torchvision:resnet18", 5, mean=train.mean, std=train.std)
    method = EDDA(loss=EDDALoss(salient_target="background"))
    out = tmp_path / "run"
    Trainer(model, method, epochs=1, lr=0.01, out_dir=out, progress=False).fit(
        make_loader(train, 8, device="cpu")
    )
    assert method.live_explainer.layer_name == "layer2"
    description = json.loads((out / "run.json").read_text())
    assert description["real_classes"] == 4 and description["num_classes"] == 5
    assert description["settings"]["cam_layer"] is None  # the default: probed again, the same way
    data = ["--dataset", "shapes", "--image-size", "16", "--device", "cpu", "--no-progress"]
    report = tmp_path / "report"
    evaluators = ["--evaluators", "accuracy", "faithfulness"]
    assert main(["evaluate", str(out), *evaluators, *data, "--out", str(report)]) == 0
    results = json.loads((report / "report.json").read_text())["models"]["edda"]
    model.eval()
    loader = make_loader(test, 64, shuffle=False, device="cpu")
    with torch.no_grad():
        hits = [(model(x)[:, :4].argmax(dim=1) == y).float() for x, y, *_ in loader]
    assert results["accuracy"]["top1"] == pytest.approx(float(torch.cat(hits).mean()))
