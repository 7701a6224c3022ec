import json

import pytest

from explainaug.cli import main

TRAIN = [
    "train",
    "--dataset",
    "shapes",
    "--train-size",
    "16",
    "--image-size",
    "16",
    "--width",
    "4",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--device",
    "cpu",
    "--no-progress",
    "--amp",
    "none",
]


@pytest.mark.slow
def test_train_then_evaluate_writes_a_report(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(TRAIN + ["--method", "edda", "--out", str(run_dir)]) == 0
    assert "edda on shapes: test accuracy" in capsys.readouterr().out
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "metrics.jsonl").is_file()
    out = tmp_path / "report"
    assert (
        main(
            [
                "evaluate",
                str(run_dir),
                "--evaluators",
                "accuracy",
                "faithfulness",
                "localization",
                "robustness",
                "calibration",
                "--corruptions",
                "fog,contrast",
                "--severities",
                "1",
                "5",
                "--eps",
                "4",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    results = json.loads((out / "report.json").read_text())
    assert set(results["models"]["edda"]) == {
        "accuracy",
        "faithfulness",
        "localization",
        "robustness",
        "calibration",
    }
    assert results["settings"]["severities"] == [1, 5]
    assert results["settings"]["eps"] == [4 / 255]
    assert set(results["models"]["edda"]["robustness"]["adversarial"]) == {"fgsm", "pgd"}
    assert "| edda |" in (out / "report.md").read_text()


@pytest.mark.slow
def test_resume_auto_continues_a_finished_run(tmp_path, capsys) -> None:
    run_dir = str(tmp_path / "run")
    assert main(TRAIN + ["--out", run_dir]) == 0
    first = capsys.readouterr().out
    assert main(TRAIN + ["--out", run_dir, "--resume", "auto"]) == 0
    assert capsys.readouterr().out == first  # nothing left to train: same weights, same accuracy


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--method", "mixup"], "invalid choice: 'mixup'"),
        (["train", "--dataset", "cifar100"], "needs a data folder (--data)"),
        (
            ["train", "--dataset", "tiny-imagenet", "--data", "/nonexistent"],
            "Tiny ImageNet not found",
        ),
        (["evaluate", "/nonexistent/run"], "no checkpoint at /nonexistent/run"),
        (["evaluate", "."], "no checkpoint"),
    ],
)
def test_clear_errors(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--corruptions", "rain"], "rain"),
        (["--explainer", "lime"], "unknown explainer"),
        (["--explainer", "gradcam", "lime"], "unknown explainer 'lime'"),
    ],
)
def test_evaluate_rejects_unknown_names(option, message, tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(TRAIN + ["--out", str(run_dir)]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "evaluate",
                str(run_dir),
                "--evaluators",
                "calibration",
                "faithfulness",
                "--device",
                "cpu",
                *option,
            ]
        )
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_evaluate_compares_several_explainers(tmp_path) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "report"
    assert main(TRAIN + ["--out", str(run_dir)]) == 0
    argv = ["evaluate", str(run_dir), "--evaluators", "accuracy", "faithfulness"]
    assert main(argv + ["--explainer", "gradcam", "eigencam", "--out", str(out)]) == 0
    results = json.loads((out / "report.json").read_text())
    name = next(iter(results["models"]))
    assert set(results["models"]) == {name, f"{name} [gradcam]", f"{name} [eigencam]"}
    assert set(results["models"][name]) == {"accuracy"}
    text = (out / "report.md").read_text().split("## Faithfulness")[1]
    assert f"| {name} [gradcam] |" in text and f"| {name} [eigencam] |" in text


def test_unreadable_checkpoint(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert main(TRAIN + ["--out", str(run_dir)]) == 0
    (run_dir / "model.pt").write_bytes(b"not a checkpoint")  # the final weights evaluate reads
    with pytest.raises(SystemExit):
        main(["evaluate", str(run_dir), "--device", "cpu"])
    assert "checkpoint" in capsys.readouterr().err


@pytest.mark.slow
def test_localization_needs_masks(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits",
                "--width",
                "4",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--no-progress",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    with pytest.raises(SystemExit):
        main(["evaluate", str(run_dir), "--evaluators", "localization", "--device", "cpu"])
    assert "localization needs object masks" in capsys.readouterr().err


def test_usage(capsys) -> None:
    assert main([]) == 0
    assert main(["unknown"]) == 2
    assert "usage: explainaug {demo,train,evaluate}" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_finds_moved_data(cifar_root, tmp_path, capsys) -> None:
    root, _ = cifar_root
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "cifar100",
                "--data",
                str(root),
                "--model",
                "resnet18",
                "--width",
                "4",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--device",
                "cpu",
                "--no-progress",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    moved = tmp_path / "moved"
    moved.mkdir()
    (root / "cifar-100-python").rename(moved / "cifar-100-python")
    with pytest.raises(SystemExit):
        main(["evaluate", str(run_dir), "--evaluators", "accuracy", "--device", "cpu"])
    assert "download=True" in capsys.readouterr().err  # names the missing folder and the fix
    assert (
        main(
            [
                "evaluate",
                str(run_dir),
                "--evaluators",
                "accuracy",
                "--device",
                "cpu",
                "--data",
                str(moved),
                "--out",
                str(tmp_path / "report"),
            ]
        )
        == 0
    )


@pytest.mark.slow
def test_evaluate_reads_only_the_test_split(tmp_path, write_tiny_imagenet) -> None:
    import shutil

    import numpy as np

    base = tmp_path / "data" / "tiny-imagenet-200"
    write_tiny_imagenet(base, "annotations", np.random.default_rng(0))
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--dataset",
                "tiny-imagenet",
                "--data",
                str(tmp_path / "data"),
                "--model",
                "resnet18",
                "--width",
                "4",
                "--epochs",
                "1",
                "--batch-size",
                "2",
                "--device",
                "cpu",
                "--no-progress",
                "--out",
                str(run_dir),
            ]
        )
        == 0
    )
    shutil.rmtree(base / "train")  # 100,000 JPEGs that evaluation has no need to decode
    assert (
        main(
            [
                "evaluate",
                str(run_dir),
                "--evaluators",
                "accuracy",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "report"),
            ]
        )
        == 0
    )


@pytest.mark.slow
def test_evaluate_uses_the_runs_explainer_and_signed_gradients(tmp_path, capsys) -> None:
    """Item 6: by default a run is evaluated with the explainer it trained with (ExCon: Grad-CAM
    at its cam_layer, no ReLU) and removed pixels take the dataset mean (the normalised zero);
    the report states both. Item 3: --explainer saliency gives signed gradients to the no-ABS
    Spearman, so its curve differs from the ABS one."""
    import torch

    from explainaug.data import make_loader
    from explainaug.evaluate import faithfulness
    from explainaug.experiment import load_run, load_test_dataset
    from explainaug.explain import GradCAM
    from explainaug.models.normalize import model_mean

    run_dir = tmp_path / "run"
    argv = TRAIN + ["--method", "excon", "--cam-layer", "block2", "--out", str(run_dir)]
    assert main(argv) == 0
    recorded = json.loads((run_dir / "run.json").read_text())["explainer"]
    assert recorded == {"name": "gradcam", "layer": "encoder.block2", "relu": False}
    out = tmp_path / "report"
    common = ["--out", str(out), "--device", "cpu"]
    assert main(["evaluate", str(run_dir), "--evaluators", "faithfulness"] + common) == 0
    results = json.loads((out / "report.json").read_text())
    assert results["settings"]["explainer"] == recorded
    model, experiment = load_run(run_dir)
    test_set = load_test_dataset(experiment)
    loader = make_loader(test_set, 256, shuffle=False, device="cpu", rank=0, world_size=1)
    expected = faithfulness(model, GradCAM(model, layer="encoder.block2", relu=False), loader)
    got = results["models"]["excon"]["faithfulness"]
    assert got["fill"] == pytest.approx(model_mean(model)) and got["fill"] != [0.0]
    assert got["average_drop_pct"] == pytest.approx(expected["average_drop_pct"], rel=1e-4)
    assert got["deletion_auc"] == pytest.approx(expected["deletion_auc"], rel=1e-4)
    assert "Removed pixels filled with" in (out / "report.md").read_text()

    argv = ["evaluate", str(run_dir), "--evaluators", "randomization", "--explainer", "saliency"]
    assert main(argv + common) == 0
    results = json.loads((out / "report.json").read_text())
    assert results["settings"]["randomization_explainer"] == {"name": "saliency", "abs": False}
    curves = results["models"]["excon"]["randomization"]["similarity"]
    gaps = torch.tensor(curves["spearman"]["mean"]) - torch.tensor(curves["spearman_abs"]["mean"])
    assert gaps.abs().max() > 0.05, gaps
