"""Each recipe runs one training step of each method on tiny trees in the real on-disk formats,
and its defaults are the references'."""

import dataclasses
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from explainaug.build import build_method, build_model
from explainaug.losses import SupConLoss
from explainaug.settings import Experiment

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TINY = ["--width", "4", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--no-progress"]
METHODS = ["ce", "supcon", "excon", "edda", "random-occlusion"]


def run_recipe(name: str, argv: list[str], monkeypatch) -> int:
    monkeypatch.setattr(sys, "argv", [str(RECIPES / name), *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(RECIPES / name), run_name="__main__")
    return exit_info.value.code


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_cifar100_recipe_runs_one_step(method, cifar_root, tmp_path, monkeypatch, capsys) -> None:
    root, _ = cifar_root  # 6 training images: one step of 4 (the last partial batch is dropped)
    out = tmp_path / method
    code = run_recipe(
        "cifar100.py",
        [
            "--method",
            method,
            "--data",
            str(root),
            "--out",
            str(out),
            "--explain-warmup-epochs",
            "0",
            *TINY,
        ],
        monkeypatch,
    )
    assert code == 0, capsys.readouterr().err
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert (settings["model"], settings["cam_layer"]) == ("resnet50", "layer2.3.conv3")
    assert (out / "checkpoint.pt").is_file()
    assert f"{method} on cifar100: test accuracy" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_tiny_imagenet_recipe_runs_one_step(
    method, tmp_path, write_tiny_imagenet, monkeypatch, capsys
) -> None:
    write_tiny_imagenet(
        tmp_path / "data" / "tiny-imagenet-200", "annotations", np.random.default_rng(0)
    )
    out = tmp_path / method
    code = run_recipe(
        "tiny_imagenet.py",
        ["--method", method, "--data", str(tmp_path / "data"), "--out", str(out), *TINY],
        monkeypatch,
    )
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["settings"]["cam_layer"] == "layer4.2.conv3"
    assert f"{method} on tiny-imagenet: test accuracy" in capsys.readouterr().out


def recipe_defaults(name: str) -> Experiment:
    return runpy.run_path(str(RECIPES / name))["DEFAULTS"]


def test_recipe_defaults_are_the_papers() -> None:
    cifar = recipe_defaults("cifar100.py")
    tiny = recipe_defaults("tiny_imagenet.py")
    # official --exp_epochs 50 (CIFAR-100) and 0 (Tiny ImageNet); the loop masks from the
    # exp_epochs-th 1-based epoch, so 49 and 0 warm-up epochs
    for defaults, batch, layer, warmup in (
        (cifar, 256, "layer2.3.conv3", 49),
        (tiny, 128, "layer4.2.conv3", 0),
    ):
        assert (defaults.model, defaults.width, defaults.epochs, defaults.temperature) == (
            "resnet50",
            64,
            200,
            0.1,
        )
        assert (defaults.batch_size, defaults.cam_layer, defaults.explain_warmup_epochs) == (
            batch,
            layer,
            warmup,
        )
        assert defaults.learning_rate == 0.5 and defaults.weight_decay == 1e-4  # ExCon, lr 0.5
        assert defaults.base_temperature == 0.07  # SupContrast/ExCon loss scale
    assert cifar.method == tiny.method == "excon"


def small(defaults: Experiment, **changes) -> tuple[Experiment, torch.nn.Module]:
    """The recipe's settings on a small CNN (the settings under test do not involve the model)."""
    experiment = dataclasses.replace(
        defaults, model="small-cnn", width=4, cam_layer=None, **changes
    )
    return experiment, build_model(experiment, 4, (0.5,) * 3, (0.25,) * 3)


@pytest.mark.parametrize("recipe", ["cifar100.py", "tiny_imagenet.py"])
@pytest.mark.parametrize("method", ["supcon", "excon"])
def test_recipe_contrastive_loss_has_the_reference_scale(recipe, method) -> None:
    """SupContrast/ExCon multiply the loss by temperature / 0.07: x(0.1 / 0.07) at T=0.1."""
    experiment, model = small(recipe_defaults(recipe), method=method)
    built = build_method(experiment)
    rows, labels = torch.randn(12, 8), torch.arange(12) % 3
    unscaled = SupConLoss(temperature=0.1, base_temperature=None)(
        rows, labels
    )  # pytorch-metric-learning's scale
    torch.testing.assert_close(
        built.contrastive_loss(rows, labels, None if method == "supcon" else labels < 0),
        unscaled * 0.1 / 0.07,
    )
    # the earlier scale stays available: base_temperature = temperature
    plain, plain_model = small(recipe_defaults(recipe), method=method, base_temperature=0.1)
    unit = build_method(plain)
    torch.testing.assert_close(
        unit.contrastive_loss(rows, labels, None if method == "supcon" else labels < 0), unscaled
    )


@pytest.mark.parametrize(
    ("recipe", "augmented"), [("cifar100.py", True), ("tiny_imagenet.py", False)]
)
@pytest.mark.parametrize("method", ["supcon", "excon"])
def test_recipe_trains_the_linear_head_in_alternating_epochs(recipe, augmented, method) -> None:
    """The official loop: a head epoch after each contrastive epoch, on the classifier loader's
    images: RandomResizedCrop(scale=(0.2, 1)) + flip on CIFAR-100, none on Tiny ImageNet."""
    experiment, model = small(recipe_defaults(recipe), method=method)
    built = build_method(experiment)
    assert built.alternating_head and built.linear_head == "alternating"
    if not augmented:
        assert built.head_augment.for_size(32) is None
        return
    crop, flip = list(built.head_augment.for_size(32).children())
    assert (
        type(crop).__name__ == "RandomResizedCrop" and type(flip).__name__ == "RandomHorizontalFlip"
    )
    assert tuple(crop._param_generator.scale) == (0.2, 1.0) and crop.flags["size"] == (32, 32)
    assert not recipe_defaults(recipe).report_best_epoch  # final-epoch accuracy is reported


def test_cifar100_recipe_masks_from_the_official_epoch() -> None:
    """Official loop: ``for epoch in range(1, 201)``, masking when ``epoch >= 50``."""
    experiment, model = small(recipe_defaults("cifar100.py"), method="excon")
    method = build_method(experiment)
    method.setup(model)
    official = [epoch >= 50 for epoch in range(1, 201)]
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3])
    masked = []
    for epoch in (47, 48, 49, 50):  # 0-based epochs of the Trainer
        _, metrics = method.training_step(model, (x, y), epoch=epoch)
        masked.append("masked_kept" in metrics)
    assert masked == official[47:51] == [False, False, True, True]


@pytest.mark.parametrize("recipe", ["cifar100.py", "tiny_imagenet.py"])
def test_recipe_help_says_the_batch_is_global(recipe, monkeypatch, capsys) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert run_recipe(recipe, ["--help"], monkeypatch) == 0
    text = " ".join(capsys.readouterr().out.replace("``", "").split())
    assert "--batch-size is the global batch" in text
    assert "the global batch: images per step over all processes, split evenly" in text


@pytest.mark.slow
def test_recipe_under_torchrun_with_two_processes(tmp_path, write_tiny_imagenet) -> None:
    write_tiny_imagenet(
        tmp_path / "data" / "tiny-imagenet-200", "annotations", np.random.default_rng(0)
    )
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    command = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        str(RECIPES / "tiny_imagenet.py"),
        "--method",
        "excon",
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(out),
        *TINY[:-3],  # --batch-size 4: the global batch, 2 images per process
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("excon on tiny-imagenet: test accuracy") == 1  # rank 0 alone
    assert (out / "checkpoint.pt").is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [record for record in records if record["kind"] == "epoch"]
    assert [record["step"] for record in epochs] == [6 // 4]  # as one process: 6 images, batch 4
