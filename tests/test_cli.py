import ast
import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_args import TRAIN

import explainaug
from explainaug.cli import main
from explainaug.settings import Experiment

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


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
        (["train", "--dataset", "cifar100"], "--data is needed by dataset 'cifar100'"),
        (
            ["train", "--dataset", "tiny-imagenet", "--data", "/nonexistent"],
            "Tiny ImageNet not found",
        ),
        (["evaluate", "/nonexistent/run"], "no checkpoint at /nonexistent/run"),
        (["evaluate", "."], "no checkpoint"),
    ],
)
def test_clear_errors(argv, message, capsys) -> None:
    code = main(argv)
    assert code == 2
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
    code = main(
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
    assert code == 2 and message in capsys.readouterr().err


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
    assert main(["evaluate", str(run_dir), "--device", "cpu"]) != 0
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
    assert main(["evaluate", str(run_dir), "--evaluators", "localization", "--device", "cpu"]) != 0
    assert "localization needs object masks" in capsys.readouterr().err


def test_usage_lists_commands_with_descriptions_and_the_version(capsys) -> None:
    assert main([]) == 0 and main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "train", "evaluate"):
        line = next(line for line in out.splitlines() if line.strip().startswith(command + " "))
        assert len(line.split()) > 4  # the command and its one-line description
    assert "``" not in out and "::" not in out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"explainaug {explainaug.__version__}"
    assert main(["trian"]) == 2
    captured = capsys.readouterr()
    assert "invalid choice: 'trian'" in captured.err and captured.out == ""


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
    assert main(["evaluate", str(run_dir), "--evaluators", "accuracy", "--device", "cpu"]) != 0
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

    from explainaug.build import load_split
    from explainaug.data import make_loader
    from explainaug.evaluate import faithfulness
    from explainaug.explain import GradCAM
    from explainaug.models.normalize import model_mean
    from explainaug.runs import load_run

    run_dir = tmp_path / "run"
    argv = TRAIN + ["--method", "excon", "--cam-layer", "block2", "--out", str(run_dir)]
    assert main(argv) == 0
    recorded = json.loads((run_dir / "run.json").read_text())["settings"]
    assert (recorded["explainer"], recorded["cam_layer"]) == ("gradcam", "block2")
    out = tmp_path / "report"
    common = ["--out", str(out), "--device", "cpu"]
    assert main(["evaluate", str(run_dir), "--evaluators", "faithfulness"] + common) == 0
    results = json.loads((out / "report.json").read_text())
    own_explainer = {"name": "gradcam", "layer": "encoder.block2", "relu": False}
    assert results["settings"]["explainer"] == own_explainer
    model, experiment = load_run(run_dir)
    test_set = load_split(experiment, "test")
    loader = make_loader(test_set, 256, shuffle=False, device="cpu", rank=0, world_size=1)
    expected = faithfulness(model, GradCAM(model, layer="encoder.block2", relu=False), loader)
    got = results["models"]["excon"]["faithfulness"]
    assert got["fill"] == pytest.approx(model_mean(model)) and got["fill"] != [0.0]
    assert got["average_drop_pct"] == pytest.approx(expected["average_drop_pct"], rel=1e-4)
    assert got["deletion_auc"] == pytest.approx(expected["deletion_auc"], rel=1e-4)
    assert "Removed pixels filled with" in (out / "report.md").read_text()

    # Named explicitly, an explainer has its own defaults on the run's layer: the one Grad-CAM
    # (with ReLU) a comparison of ExCon with CE or EDDA runs needs.
    argv = ["evaluate", str(run_dir), "--evaluators", "faithfulness", "--explainer", "gradcam"]
    assert main(argv + common) == 0
    results = json.loads((out / "report.json").read_text())
    explicit = {"name": "gradcam", "layer": "encoder.block2", "relu": True}
    assert results["settings"]["explainer"] == explicit
    expected = faithfulness(model, GradCAM(model, layer="encoder.block2"), loader)
    own = got
    got = results["models"]["excon"]["faithfulness"]
    assert got["average_drop_pct"] == pytest.approx(expected["average_drop_pct"], rel=1e-4)
    assert got["deletion_auc"] != own["deletion_auc"]  # the ReLU changed the maps

    argv = ["evaluate", str(run_dir), "--evaluators", "randomization", "--explainer", "saliency"]
    assert main(argv + common) == 0
    results = json.loads((out / "report.json").read_text())
    assert results["settings"]["randomization_explainer"] == {"name": "saliency", "abs": False}
    curves = results["models"]["excon"]["randomization"]["similarity"]
    gaps = torch.tensor(curves["spearman"]["mean"]) - torch.tensor(curves["spearman_abs"]["mean"])
    assert gaps.abs().max() > 0.05, gaps


def one_line_error(capsys, argv) -> str:
    """Run the command, expect exit code 2 and exactly one line on stderr; return that line."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A finished tiny `ce` run (checkpoint, metrics, run.json, model.pt)."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    assert main(TRAIN + ["--out", str(run_dir)]) == 0
    return run_dir


@pytest.fixture
def run_copy(trained_run, tmp_path) -> Path:
    return Path(shutil.copytree(trained_run, tmp_path / "run"))


NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("tpu", "unknown device 'tpu'"),
        ("cuda:x", "unknown device 'cuda:x'"),
        pytest.param("cuda", "no CUDA GPU is available", marks=NO_GPU),
    ],
)
def test_train_on_a_device_this_machine_lacks(device, message, tmp_path, capsys) -> None:
    argv = TRAIN + ["--out", str(tmp_path / "run"), "--device", device]
    assert message in one_line_error(capsys, argv)
    assert not (tmp_path / "run").exists()


@NO_GPU
def test_evaluate_on_cuda_without_a_gpu_is_not_a_corrupt_checkpoint(trained_run, capsys) -> None:
    line = one_line_error(capsys, ["evaluate", str(trained_run), "--device", "cuda"])
    assert "no CUDA GPU is available" in line and "corrupt" not in line


@pytest.mark.parametrize("where", ["under-a-file", "is-a-file"])
def test_train_into_an_unusable_folder(where, tmp_path, capsys) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    out = file / "run" if where == "under-a-file" else file
    line = one_line_error(capsys, TRAIN + ["--out", str(out)])
    assert f"cannot write to the output folder {out}" in line


def test_random_bytes_as_checkpoints(run_copy, capsys) -> None:
    generator = random.Random(0)
    for name in ("checkpoint.pt", "model.pt"):
        (run_copy / name).write_bytes(bytes(generator.randrange(256) for _ in range(4096)))
    line = one_line_error(capsys, ["evaluate", str(run_copy), "--device", "cpu"])
    assert f"cannot load checkpoint {run_copy / 'model.pt'}" in line
    line = one_line_error(capsys, TRAIN + ["--out", str(run_copy), "--resume", "auto"])
    assert f"cannot load checkpoint {run_copy / 'checkpoint.pt'}" in line


def test_a_checkpoint_with_code_is_refused_without_unsafe_advice(run_copy, capsys) -> None:
    torch.save({"model": Path("pickled")}, run_copy / "model.pt")  # not weights-only loadable
    line = one_line_error(capsys, ["evaluate", str(run_copy), "--device", "cpu"])
    assert f"cannot load checkpoint {run_copy / 'model.pt'}" in line
    assert "weights_only" not in line and "safe (weights-only) load refuses" in line


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--method", "edda"], "method='ce' (this run: 'edda')"),
        (["--width", "8"], "width=4 (this run: 8)"),
        (["--model", "resnet18"], "model='small-cnn' (this run: 'resnet18')"),
        (["--epochs", "3"], "epochs=1 (this run: 3); epochs sets the learning-rate schedule"),
    ],
)
def test_resume_with_other_settings_names_them(change, named, run_copy, capsys) -> None:
    before = (run_copy / "checkpoint.pt").read_bytes()
    line = one_line_error(capsys, TRAIN + ["--out", str(run_copy), "--resume", "auto", *change])
    assert named in line and "cannot resume" in line
    assert (run_copy / "checkpoint.pt").read_bytes() == before


def test_resume_may_change_what_only_reports(run_copy, capsys) -> None:
    """Settings that change no weight (where the data is, what is reported) may differ."""
    argv = TRAIN + ["--out", str(run_copy), "--resume", "auto", "--report-best-epoch"]
    assert main(argv) == 0
    assert "best test accuracy over epochs (selected on the test set)" in capsys.readouterr().out


def test_resume_of_a_bare_checkpoint_that_does_not_fit(run_copy, tmp_path, capsys) -> None:
    (run_copy / "run.json").unlink()  # nothing to compare with: the weights are checked
    argv = TRAIN + ["--out", str(tmp_path / "new"), "--width", "8"]
    line = one_line_error(capsys, argv + ["--resume", str(run_copy / "checkpoint.pt")])
    assert f"checkpoint {run_copy / 'checkpoint.pt'} does not fit this SmallCNN" in line


def test_training_into_a_folder_holding_a_run_is_refused(run_copy, capsys) -> None:
    (run_copy / "report").mkdir()
    (run_copy / "report" / "report.json").write_text("{}")
    files = {path.name: path.read_bytes() for path in run_copy.iterdir() if path.is_file()}
    line = one_line_error(capsys, TRAIN + ["--out", str(run_copy), "--method", "edda"])
    assert "already holds a run" in line and "--resume auto" in line and "--overwrite" in line
    assert {path.name: path.read_bytes() for path in run_copy.iterdir() if path.is_file()} == files

    assert main(TRAIN + ["--out", str(run_copy), "--method", "edda", "--overwrite"]) == 0
    records = (run_copy / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 1  # one epoch of the new run, none of the old one
    assert json.loads((run_copy / "run.json").read_text())["settings"]["method"] == "edda"
    assert not (run_copy / "report").exists()  # the old run's report is gone


def help_entries(capsys, argv) -> dict[str, str]:
    """Each option flag of a command's ``--help`` -> its help text (flags and metavars cut off),
    on one line. Also checks the help as a whole: exit code 0, no raw RST markup."""
    assert main(argv) == 0
    help_text = capsys.readouterr().out
    assert "``" not in help_text and ":func:" not in help_text
    options = help_text.split("\noptions:\n", 1)[1]
    entries = {}
    for entry in re.split(r"\n(?=  -)", options):
        header, _, text = entry.strip().partition("  ")  # two spaces end the flags
        for flag in re.findall(r"--[\w-]+", header):
            entries[flag] = " ".join(text.split())
    return entries


def test_train_help_shows_every_setting_with_help_and_default(capsys) -> None:
    entries = help_entries(capsys, ["train", "--help"])
    flags = [
        "--data" if field.name == "root" else "--" + field.name.replace("_", "-")
        for field in dataclasses.fields(Experiment)
    ]
    for flag in [*flags, "--out", "--resume", "--overwrite", "--device"]:
        entry = entries[flag]
        assert "(default:" in entry and len(entry.split()) > 3, (flag, entry)


@pytest.mark.parametrize("command", ["train", "evaluate", "demo"])
def test_help_states_each_default_once(command, capsys) -> None:
    entries = help_entries(capsys, [command, "--help"])
    for flag, entry in entries.items():
        assert entry.count("(default:") <= 1, (flag, entry)
        assert "(default None" not in entry, (flag, entry)


def test_demo_help_explains_every_flag_and_its_default(capsys) -> None:
    entries = help_entries(capsys, ["demo", "--help"])
    assert {"--dataset", "--epochs", "--methods", "--no-progress", "--tables"} <= set(entries)
    for flag, entry in entries.items():
        if flag != "--help":
            assert "(default:" in entry and len(entry.split()) > 3, (flag, entry)


def test_train_help_names_every_file_a_run_writes(capsys) -> None:
    assert main(["train", "--help"]) == 0
    description = capsys.readouterr().out.split("\noptions:\n", 1)[0]
    for name in ("checkpoint.pt", "metrics.jsonl", "metrics.csv", "results.json", "run.json"):
        assert name in description, name


def test_evaluate_no_progress_hides_the_progress_bars(trained_run, tmp_path, capsys) -> None:
    argv = ["evaluate", str(trained_run), "--evaluators", "accuracy", "--device", "cpu"]
    assert main(argv + ["--out", str(tmp_path / "shown")]) == 0
    assert "report:" in capsys.readouterr().err  # tqdm's bar, on stderr
    assert main(argv + ["--out", str(tmp_path / "hidden"), "--no-progress"]) == 0
    assert "report:" not in capsys.readouterr().err


def test_train_help_speaks_in_flags_not_python(capsys) -> None:
    """The help comes from the Experiment docstring: Python names (classes, functions, field
    names, catalog dicts) become flags or words a command-line user knows."""
    entries = help_entries(capsys, ["train", "--help"])
    text = " ".join(entries.values())
    for jargon in (
        "catalog.",
        "TrainedRun",
        "real_class_logits",
        "RandomOcclusionControl",
        "load_run",
        "EDDALoss",
        "Trainer",
        "root=",
        "salient_target",
        "base_temperature",
        "test_accuracy stays",
    ):
        assert jargon not in text, jargon
    assert "download CIFAR-100 into --data" in entries["--download"]
    assert "its --exp_epochs 50 is 49 here" in entries["--explain-warmup-epochs"]
    assert "the second view gets --salient-target" in entries["--control-targets"]
    assert "shapes only" in entries["--train-size"]


HELP_CALLS = {  # what a user types for help -> the Python that answers it
    "explainaug --help": "from explainaug.cli import main; main(['--help'])",
    "explainaug --version": "from explainaug.cli import main; main(['--version'])",
    "explainaug train --help": "from explainaug.cli import main; main(['train', '--help'])",
    "explainaug evaluate --help": "from explainaug.cli import main; main(['evaluate', '--help'])",
    **{
        f"recipes/{recipe}.py --help": (
            f"import runpy, sys; sys.argv = ['{recipe}.py', '--help']; "
            f"runpy.run_path({str(RECIPES / f'{recipe}.py')!r}, run_name='__main__')"
        )
        for recipe in ("cifar100", "tiny_imagenet")
    },
}


def _help_in_a_fresh_process(call: str) -> tuple[str, list[str]]:
    """The help text of ``call`` and which heavy libraries it imported."""
    code = (
        "import sys\n"
        "try:\n"
        f"    {call}\n"
        "except SystemExit as stop:\n"
        "    assert stop.code in (0, None), stop.code\n"
        "print('@@', sorted(m for m in ('torch', 'kornia', 'numpy', 'timm') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    text, imported = out.rsplit("@@ ", 1)
    return text, ast.literal_eval(imported.strip())


@pytest.mark.parametrize("command", HELP_CALLS)
def test_help_and_version_do_not_import_torch(command) -> None:
    # torch alone takes over a second to import; help must start at once (issue 11: < 2 s)
    text, imported = _help_in_a_fresh_process(HELP_CALLS[command])
    assert imported == [], f"{command} imported {imported}"
    assert "``" not in text and ":func:" not in text  # no raw RST markup in any help


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--lr", "inf"], "--lr must be none or a finite number > 0, got inf"),
        (["--weight-decay", "nan"], "--weight-decay must be a finite number >= 0, got nan"),
        (["--seed", "-1"], "--seed must be an int in [0, 4294967295], got -1"),
        (["--lr", "1e30"], "the training loss became nan"),  # diverges: one line, no traceback
    ],
)
def test_out_of_domain_settings_exit_with_one_line(option, message, tmp_path, capsys) -> None:
    assert message in one_line_error(capsys, TRAIN + ["--out", str(tmp_path / "run"), *option])


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_timm_model_without_timm_installed(command, run_copy, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    if command == "train":
        argv = TRAIN + ["--model", "timm:resnet18", "--out", str(run_copy.parent / "timm")]
    else:  # a run recorded with a timm model, evaluated where timm is missing
        description = json.loads((run_copy / "run.json").read_text())
        description["settings"]["model"] = description["model"]["name"] = "timm:resnet18"
        (run_copy / "run.json").write_text(json.dumps(description))
        argv = ["evaluate", str(run_copy), "--device", "cpu"]
    line = one_line_error(capsys, argv)
    assert "needs timm: pip install 'explainaug[timm]'" in line


def test_tensorboard_without_tensorboard_installed(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    line = one_line_error(capsys, TRAIN + ["--tensorboard", "--out", str(tmp_path / "run")])
    assert "needs tensorboard: pip install 'explainaug[tensorboard]'" in line


def test_a_truncated_image_in_a_folder_is_named(tmp_path, write_image_folder, capsys) -> None:
    root = write_image_folder(tmp_path / "data")
    broken = root / "train" / "square" / "square_1.png"
    broken.write_bytes(broken.read_bytes()[:-40])  # cut off the end of the pixel data
    argv = ["train", "--dataset", "folder", "--data", str(root), "--image-size", "16"]
    argv += TRAIN[TRAIN.index("--width") :] + ["--out", str(tmp_path / "run")]
    line = last_error_line(capsys, argv)
    assert line == f"explainaug train: error: cannot read image {broken}: image file is truncated"


def last_error_line(capsys, argv) -> str:
    """As ``one_line_error``, where INFO lines (an image folder's size and place) may come
    first: expect exit code 2 and no traceback; return the last line on stderr."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    return err.strip().splitlines()[-1]


@pytest.fixture
def folder_run(tmp_path, write_image_folder) -> Path:
    """A finished tiny `ce` run on an image folder (3 classes, no object masks)."""
    root = write_image_folder(tmp_path / "data")
    argv = ["train", "--dataset", "folder", "--data", str(root), "--image-size", "16"]
    assert main(argv + TRAIN[TRAIN.index("--width") :] + ["--out", str(tmp_path / "run")]) == 0
    return tmp_path / "run"


def test_evaluate_skips_localization_on_data_without_masks(folder_run, tmp_path, capsys) -> None:
    out = tmp_path / "report"
    argv = ["evaluate", str(folder_run), "--device", "cpu", "--corruptions", "none"]
    assert main(argv + ["--eps", "1", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    skipped = [line for line in captured.out.splitlines() if "localization" in line]
    assert skipped == ["skipped localization: dataset 'folder' has no object masks (shapes has)"]
    evaluated = set(next(iter(json.loads((out / "report.json").read_text())["models"].values())))
    assert evaluated == {"accuracy", "calibration", "robustness", "randomization", "faithfulness"}
    # asked for by name, it is an error
    line = last_error_line(capsys, argv + ["--evaluators", "accuracy", "localization"])
    assert "localization needs object masks; folder has none" in line


def test_evaluate_on_data_with_other_classes_names_both_counts(trained_run, capsys) -> None:
    argv = ["evaluate", str(trained_run), "--dataset", "digits", "--device", "cpu"]
    line = one_line_error(capsys, argv + ["--evaluators", "accuracy"])
    assert "the run has 4 classes but dataset 'digits' has 10" in line


@pytest.mark.parametrize("value", ["-2", "nan", "inf"])
def test_evaluate_eps_is_checked_in_the_units_given(value, trained_run, capsys) -> None:
    argv = ["evaluate", str(trained_run), "--evaluators", "robustness", "--device", "cpu"]
    line = one_line_error(capsys, argv + ["--eps", "4", value])
    assert f"--eps takes finite budgets >= 0 in 1/255 units, got {float(value)}" in line


def test_evaluate_unknown_corruption_lists_the_names(trained_run, capsys) -> None:
    argv = ["evaluate", str(trained_run), "--evaluators", "calibration", "--device", "cpu"]
    line = one_line_error(capsys, argv + ["--corruptions", "fog,fogg"])
    assert "unknown corruption 'fogg' in --corruptions" in line
    assert "gaussian_noise, shot_noise, impulse_noise" in line and "jpeg_compression" in line


def test_a_batch_larger_than_the_training_set(tmp_path, capsys) -> None:
    argv = TRAIN + ["--batch-size", "64", "--out", str(tmp_path / "run")]  # 16 training images
    line = one_line_error(capsys, argv)
    assert "--batch-size 64: a batch of 64 is larger than the 16 images of the dataset" in line
    assert "drop_last" not in line


def test_the_report_names_the_layer_a_default_resolves_to(trained_run, tmp_path) -> None:
    """A run on the model's default CAM layer records None; the report names the layer used."""
    assert json.loads((trained_run / "run.json").read_text())["settings"]["cam_layer"] is None
    out = tmp_path / "report"
    argv = ["evaluate", str(trained_run), "--evaluators", "faithfulness", "--device", "cpu"]
    assert main(argv + ["--out", str(out), "--no-progress"]) == 0
    settings = json.loads((out / "report.json").read_text())["settings"]["explainer"]
    assert settings == {"name": "gradcam", "layer": "block3", "relu": True}
    assert "'layer': 'block3'" in (out / "report.md").read_text()


def test_a_start_that_failed_does_not_block_the_retry(tmp_path, capsys) -> None:
    """A run refused before its first epoch (here: a batch larger than the data) leaves no
    weights to protect: the corrected command trains into the same folder."""
    out = ["--out", str(tmp_path / "run")]
    assert "larger than the 16 images" in one_line_error(
        capsys, TRAIN + out + ["--batch-size", "64"]
    )
    assert main(TRAIN + out) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_a_first_epoch_that_died_keeps_its_step_records(tmp_path, capsys) -> None:
    """Killed in its first epoch (no checkpoint), a run still has step records in metrics.jsonl,
    which explain the crash: a retry is refused like any run, not silently cleared."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{}")
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "loss": 2.3}\n')
    line = one_line_error(capsys, TRAIN + ["--out", str(run_dir)])
    assert "already holds a run (run.json, metrics.jsonl)" in line
    assert (run_dir / "metrics.jsonl").read_text().startswith('{"step": 1')


def test_an_unknown_cam_layer_is_refused_before_training_for_every_method(tmp_path, capsys):
    """CE never explains in training, but evaluate explains with the run's layer later."""
    argv = TRAIN + ["--out", str(tmp_path / "run"), "--method", "ce", "--cam-layer", "nope"]
    assert "unknown layer 'nope'" in one_line_error(capsys, argv)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ["--explain-warmup-epochs", "50"],
            "--explain-warmup-epochs must be an int in [0, --epochs = 1], got 50",
        ),
        (["--view-min-scale", "0"], "--view-min-scale must be a number in (0, 1], got 0.0"),
    ],
)
def test_errors_name_the_flag_not_the_python_field(option, message, tmp_path, capsys) -> None:
    assert message in one_line_error(capsys, TRAIN + ["--out", str(tmp_path / "run"), *option])


def test_cifar_download_problems_are_one_line(tmp_path, capsys, monkeypatch) -> None:
    """No network (--download) and a corrupt archive: one line each, naming the fix."""
    import urllib.error

    import explainaug.data.cifar as cifar

    class Offline:
        def __init__(self, *args, **kwargs):
            raise urllib.error.URLError("Name or service not known")

    argv = ["train", "--dataset", "cifar100", "--data", str(tmp_path), "--device", "cpu"]
    missing = one_line_error(capsys, argv + ["--out", str(tmp_path / "a")])
    assert "pass --download (download=True)" in missing and "--data" in missing
    monkeypatch.setattr(cifar, "CIFAR100", type("CIFAR100", (Offline, cifar.CIFAR100), {}))
    line = one_line_error(capsys, argv + ["--download", "--out", str(tmp_path / "b")])
    assert "could not download CIFAR-100" in line and "Name or service not known" in line


def test_an_error_on_a_default_the_user_did_not_give_says_so(tmp_path, capsys) -> None:
    """A recipe's --epochs 1 meets its 49 warm-up epochs: the user never typed that flag."""
    from explainaug.cli import train_main
    from explainaug.settings import Experiment

    argv = TRAIN[1:] + ["--out", str(tmp_path / "run"), "--method", "excon"]
    with pytest.raises(SystemExit):
        train_main(argv, Experiment(explain_warmup_epochs=49), prog="recipe")
    line = capsys.readouterr().err.strip()
    assert line.startswith(
        "recipe: error: --explain-warmup-epochs must be an int in [0, --epochs = 1], got 49"
    )
    assert line.endswith("(--explain-warmup-epochs was not given: 49 is this command's default)")
    with pytest.raises(SystemExit):
        train_main(argv + ["--explain-warmup-epochs", "5"], prog="recipe")
    assert "was not given" not in capsys.readouterr().err
    with pytest.raises(SystemExit):  # given under argparse's abbreviation: given all the same
        train_main(argv + ["--explain-warm", "5"], prog="recipe")
    assert "was not given" not in capsys.readouterr().err


def test_none_restores_an_optional_setting_a_recipe_set() -> None:
    """The CIFAR-100 recipe sets --cam-layer layer2.3.conv3; `--cam-layer none` is the model's
    default again (as the help's "None = the model's default" says)."""
    import argparse

    from explainaug.cli import add_settings, experiment_from_args
    from explainaug.settings import Experiment

    recipe = Experiment(cam_layer="layer2.3.conv3")
    parser = argparse.ArgumentParser()
    add_settings(parser, recipe)
    for value in ("none", "None", ""):
        given = parser.parse_args(["--cam-layer", value])
        assert experiment_from_args(given, recipe).cam_layer is None
    assert experiment_from_args(parser.parse_args([]), recipe).cam_layer == "layer2.3.conv3"


@pytest.mark.parametrize("name", ["guidedgradcam", "integratedgradcam", "scorecam", "eigencam"])
def test_evaluate_names_the_layer_of_every_cam_family_explainer(name, trained_run, tmp_path):
    out = tmp_path / "report"
    argv = ["evaluate", str(trained_run), "--evaluators", "localization", "--explainer", name]
    assert main(argv + ["--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    settings = json.loads((out / "report.json").read_text())["settings"]["explainer"]
    assert settings["name"] == name and settings["layer"] == "block3"
    assert "relu" not in settings  # only Grad-CAM itself takes relu=
