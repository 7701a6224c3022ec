"""Your own data and model, end to end through the command line (real PNG files)."""

import json

import pytest
import torch

from explainaug.cli import main
from explainaug.data import device_loader, image_folder
from explainaug.runs import load_run

FAST = ["--epochs", "1", "--batch-size", "6", "--width", "4", "--device", "cpu"]
FAST += ["--no-progress", "--amp", "none"]


@pytest.mark.slow
@pytest.mark.parametrize("fits", [True, False])
def test_train_and_evaluate_an_image_folder(
    fits, tmp_path, write_image_folder, capsys, monkeypatch
) -> None:
    monkeypatch.setattr(device_loader, "fits_on_device", lambda n_bytes, device: fits)
    root = write_image_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", "folder", "--data", str(root), "--image-size", "16"]
    assert main(argv + FAST + ["--out", str(run_dir)]) == 0
    captured = capsys.readouterr()
    assert "ce on folder: test accuracy" in captured.out
    assert "train split (train/): 18 images, 3x16x16" in captured.err  # not val/: it has one
    assert "test split (val/): " in captured.err
    where = "stays on the device (DeviceLoader)" if fits else "decoded in DataLoader workers"
    assert where in captured.err
    assert "epoch 1/1  loss " in captured.err and "test acc " in captured.err
    saved = json.loads((run_dir / "results.json").read_text())["test_accuracy"]
    assert f"test accuracy {saved:.4f}" in captured.out
    assert (run_dir / "metrics.csv").read_text().startswith("epoch,")
    report = tmp_path / "report"
    evaluate = ["evaluate", str(run_dir), "--evaluators", "accuracy", "--out", str(report)]
    assert main(evaluate + ["--device", "cpu"]) == 0
    top1 = json.loads((report / "report.json").read_text())["models"]["ce"]["accuracy"]["top1"]
    model, _ = load_run(run_dir)
    val = image_folder(root, "test", size=16, lazy=False)
    with torch.no_grad():
        predicted = model(val.images.float() / 255).argmax(dim=1)
    assert top1 == (predicted == val.labels).float().mean().item()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["torchvision:resnet18", "timm:resnet18"])
def test_excon_and_edda_with_a_library_model(model, tmp_path, write_image_folder, capsys) -> None:
    if model.startswith("timm:"):
        pytest.importorskip("timm")
    root = write_image_folder(tmp_path / "data")
    for method in ("excon", "edda"):
        run_dir = tmp_path / method
        argv = ["train", "--dataset", "folder", "--data", str(root), "--image-size", "16"]
        argv += ["--method", method, "--model", model]  # the default CAM layer
        assert main(argv + FAST + ["--out", str(run_dir)]) == 0
        assert f"{method} on folder: test accuracy" in capsys.readouterr().out
        report = tmp_path / f"{method}-report"
        evaluate = ["evaluate", str(run_dir), "--evaluators", "accuracy", "--device", "cpu"]
        assert main(evaluate + ["--out", str(report)]) == 0
        results = json.loads((report / "report.json").read_text())["models"][method]
        trained, _ = load_run(run_dir)
        val = image_folder(root, "test", size=16, lazy=False)
        with torch.no_grad():
            predicted = trained(val.images.float() / 255).argmax(dim=1)
        assert results["accuracy"]["top1"] == (predicted == val.labels).float().mean().item()
        assert trained.model_spec["name"] == model
        assert trained.model_spec["contrastive"] == (method == "excon")
