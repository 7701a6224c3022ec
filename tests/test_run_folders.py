"""Run folders through what a user does to them (issue 21): stop a command with a signal and run
it again, run two commands into one --out, replace a run with --overwrite, start a run that
cannot start. The signal and lock tests run the command in another process, as a user does."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_args import TRAIN

from explainaug.cli import main

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}


def start(argv: list[str], cwd: Path | None = None) -> subprocess.Popen:
    """``explainaug ARGV`` in a new process (its stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "explainaug.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=cwd,
    )


def wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    """Poll ``condition()`` until it holds; fail if ``process`` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the command ended ({process.returncode}) too early:\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("timed out")
        time.sleep(0.05)


def epochs_logged(folder: Path) -> list[int]:
    """The epochs ``metrics.jsonl`` records as finished."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [record["epoch"] for record in records if record.get("kind") == "epoch"]


def one_line_error(capsys, argv) -> str:
    """Run the command, expect exit code 2 and exactly one line on stderr; return that line."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


LONG_TRAIN = [
    *TRAIN[: TRAIN.index("--epochs")],
    "--epochs",
    "400",
    *TRAIN[TRAIN.index("--epochs") + 2 :],
]


# ------------------------------------------------------------------------ train and signals


def stop_train(out: Path, signum: int) -> tuple[int, str]:
    """Start a long ``explainaug train`` into ``out``, send ``signum`` after its second epoch;
    return its exit code and stdout."""
    process = start([*LONG_TRAIN, "--out", str(out)])
    wait_for(lambda: len(epochs_logged(out)) >= 2, process)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout + stderr


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory) -> tuple[Path, int, str]:
    """A train run stopped by SIGTERM: its folder, exit code and output."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    return (out, *stop_train(out, signal.SIGTERM))


def test_train_stopped_by_sigterm_exits_143(stopped_run) -> None:
    out, code, output = stopped_run
    assert code == 143, output
    assert "stopped by SIGTERM: checkpoint in" in output and "--resume auto" in output
    assert (out / "checkpoint.pt").is_file() and not (out / "model.pt").exists()


@pytest.mark.slow  # another process importing torch
def test_train_stopped_by_ctrl_c_exits_130(tmp_path) -> None:
    code, output = stop_train(tmp_path / "run", signal.SIGINT)
    assert code == 130, output
    assert "stopped by SIGINT (Ctrl-C): checkpoint in" in output


def test_evaluating_an_unfinished_run_says_so(stopped_run, tmp_path, capsys) -> None:
    out = stopped_run[0]
    done = max(epochs_logged(out))  # epochs finished before the stop
    argv = ["evaluate", str(out), "--evaluators", "accuracy", "--device", "cpu", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "report")]) == 0
    said = f"unfinished run: {done} of 400 epochs trained, no final weights (model.pt)"
    assert f"warning: {said}" in capsys.readouterr().out
    assert said in (tmp_path / "report" / "report.md").read_text().split("## Settings")[0]
    warnings = json.loads((tmp_path / "report" / "report.json").read_text())["warnings"]
    assert warnings[0].startswith(said)


# ----------------------------------------------------------------- one owner per run folder


@pytest.mark.slow  # three processes, each importing torch: about 30 s
def test_a_second_run_into_a_busy_folder_is_refused_and_a_killed_runs_lock_taken_over(
    tmp_path, capsys
):
    out = tmp_path / "run"
    first = start([*LONG_TRAIN, "--out", str(out)])
    try:
        wait_for(lambda: len(epochs_logged(out)) >= 1, first)
        before = (out / "metrics.jsonl").read_text()
        for extra in ([], ["--overwrite"], ["--resume", "auto"]):
            line = one_line_error(capsys, [*LONG_TRAIN, "--out", str(out), *extra])
            assert f"--out {out} is in use by process {first.pid} (" in line, line
            assert "train" in line and "--epochs 400" in line  # the holder's command
        assert (out / "metrics.jsonl").read_text().startswith(before)  # nothing of ours in it
    finally:
        first.kill()  # kill -9: no handler runs, the lock file still names it
        first.communicate()
    assert str(first.pid) in (out / "run.lock").read_text()
    argv = [*LONG_TRAIN, "--out", str(out), "--resume", "auto"]
    process = start(argv)
    wait_for(lambda: str(process.pid) in (out / "run.lock").read_text(), process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert f"its lock was left by process {first.pid}" in stderr
    assert (out / "run.lock").read_text() == ""  # released: free for the next run


def test_a_trainer_from_python_is_refused_a_folder_another_process_owns(tmp_path) -> None:
    import torch

    from explainaug.lock import FolderBusyError
    from explainaug.models import SmallCNN
    from explainaug.train import CrossEntropy, Trainer

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from explainaug.lock import FolderLock; "
            "lock = FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        batches = [(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))]
        trainer = Trainer(SmallCNN(num_classes=2, width=4), CrossEntropy(), epochs=1, lr=0.01)
        trainer.out_dir, trainer.progress = out, False
        with pytest.raises(FolderBusyError, match=f"is in use by process {holder.pid} "):
            trainer.fit(batches)
        assert not (out / "checkpoint.pt").exists() and not (out / "run.json").exists()
    finally:
        holder.kill()
        holder.communicate()
    assert len(trainer.fit(batches)) == 1  # the killed holder's lock is taken over
    assert (out / "checkpoint.pt").is_file()


# ---------------------------------------------------- nothing touched before the run starts


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--model", "torchvision:nope"], "unknown torchvision model 'nope'"),
        (["--cam-layer", "nope"], "unknown layer 'nope'"),
        (["--model", "torchvision:resnet18", "--weights", "missing.pt"], "--weights names no file"),
        (["--dataset", "folder", "--data", "no-such-folder"], "no-such-folder"),
        (["--train-size", "4", "--batch-size", "8"], "--batch-size 8"),
        (["--lr-warmup-epochs", "5"], "--lr-warmup-epochs"),
        (["--explain-warmup-epochs", "5", "--method", "edda"], "--explain-warmup-epochs"),
        (["--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_a_run_that_cannot_start_creates_nothing(option, message, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    line = one_line_error(capsys, [*TRAIN, "--out", str(out), *option])
    assert message in line
    assert not out.exists()


def test_a_missing_optional_library_creates_nothing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError
    out = tmp_path / "run"
    line = one_line_error(capsys, [*TRAIN, "--out", str(out), "--model", "timm:resnet18"])
    assert "needs timm: pip install 'explainaug[timm]'" in line
    assert not out.exists()


def test_a_model_that_cannot_take_the_image_size_is_one_line_before_the_run(tmp_path, capsys):
    pytest.importorskip("timm")
    out = tmp_path / "run"
    argv = [*TRAIN, "--out", str(out), "--model", "timm:vit_tiny_patch16_224"]
    line = one_line_error(capsys, [*argv, "--image-size", "32"])
    assert "--model timm:vit_tiny_patch16_224 cannot take this run's 32x32 images" in line
    assert "--image-size 32" in line
    assert not out.exists()


@pytest.fixture
def finished_run(tmp_path) -> Path:
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 0
    return out


def test_overwrite_keeps_the_old_run_until_the_new_one_starts(finished_run, capsys) -> None:
    files = {path.name: path.read_bytes() for path in finished_run.iterdir()}
    argv = [*TRAIN, "--out", str(finished_run), "--overwrite"]
    assert "unknown torchvision model" in one_line_error(
        capsys, [*argv, "--model", "torchvision:nope"]
    )
    assert {path.name: path.read_bytes() for path in finished_run.iterdir()} == files


def test_overwrite_leaves_nothing_of_the_old_run(finished_run, capsys) -> None:
    """A new run that started and then failed (its loss diverged) must not sit beside the old
    run's results and metrics, which would describe a run no longer there."""
    (finished_run / "report").mkdir()
    (finished_run / "report" / "report.json").write_text("{}")
    argv = [*TRAIN, "--out", str(finished_run), "--overwrite", "--lr", "1e30"]
    assert "the training loss became nan" in one_line_error(capsys, argv)
    left = sorted(path.name for path in finished_run.iterdir())
    assert left == ["run.json", "run.lock"], left
    assert json.loads((finished_run / "run.json").read_text())["settings"]["lr"] == 1e30


# ------------------------------------------------------------------- the demo: stop, resume


def demo_argv(out: Path, epochs: int, methods: list[str]) -> list[str]:
    return [
        "demo",
        "--epochs",
        str(epochs),
        "--train-size",
        "128",
        "--methods",
        *methods,
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    ]


def stop_demo(argv: list[str], method_dir: Path, signum: int) -> tuple[str, float]:
    """Start the demo, send ``signum`` once ``method_dir``'s run has logged an epoch; return
    its stdout and the seconds it took to exit after the signal."""
    process = start(argv)
    wait_for(lambda: len(epochs_logged(method_dir)) >= 1, process)
    process.send_signal(signum)
    sent = time.monotonic()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum, stderr
    return stdout, time.monotonic() - sent


def test_ctrl_c_stops_the_demo_and_a_rerun_with_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = demo_argv(out, 200, ["ce"])
    stdout, seconds = stop_demo(argv, out / "seed0" / "runs" / "ce", signal.SIGINT)
    assert seconds < 30, seconds  # the next step boundary, not the end of the demo
    assert "stopped by SIGINT (Ctrl-C): no table written; run the same command again" in stdout
    assert not (out / "summary.md").exists() and not (out / "seed0" / "report.json").exists()
    line = one_line_error(capsys, demo_argv(out, 3, ["ce"]))
    assert f"--out {out} holds a demo run with --epochs 200 (this command: 3)" in line
    assert "--overwrite" in line
    assert (out / "seed0" / "runs" / "ce" / "checkpoint.pt").is_file()  # kept for the resume


@pytest.mark.slow  # two demos and a reference run: about a minute
def test_a_stopped_demo_resumes_bit_identically(tmp_path, capsys) -> None:
    import torch

    from explainaug.demo import demo_experiment
    from explainaug.experiment import run

    out = tmp_path / "demo"
    runs = out / "seed0" / "runs"
    argv = demo_argv(out, 6, ["ce", "supcon"])
    stdout, seconds = stop_demo(argv, runs / "supcon", signal.SIGTERM)
    assert seconds < 30, seconds
    assert "stopped by SIGTERM" in stdout
    assert not (out / "summary.md").exists() and not (out / "seed0" / "report.json").exists()
    assert not (runs / "supcon" / "model.pt").exists()  # no table from a half-trained model
    finished = (runs / "ce" / "model.pt").stat().st_mtime_ns

    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ce: kept from the earlier run" in printed and "resuming supcon" in printed
    assert (runs / "ce" / "model.pt").stat().st_mtime_ns == finished  # not trained again
    assert epochs_logged(runs / "supcon") == [1, 2, 3, 4, 5, 6]
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert set(summary) == {"ce", "supcon"}
    assert main(argv) == 0  # all done: nothing trained or evaluated again
    assert "kept the evaluation of the earlier run" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["summary"] == summary

    reference = run(demo_experiment("supcon", "shapes", 0, 6, 128), device="cpu", progress=False)
    resumed = torch.load(runs / "supcon" / "model.pt", weights_only=True)["model"]
    expected = reference.model.state_dict()
    assert resumed.keys() == expected.keys()
    assert all(torch.equal(resumed[key], expected[key]) for key in expected)


def test_demo_overwrite_starts_over_and_keeps_other_files(tmp_path, capsys) -> None:
    from explainaug.demo import demo_settings

    out = tmp_path / "demo"
    (out / "seed0" / "runs").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    recorded = demo_settings(["main"], "shapes", seeds=1, epochs=99, methods=["ce"], train_size=128)
    (out / "demo.json").write_text(json.dumps(recorded))
    line = one_line_error(capsys, demo_argv(out, 1, ["ce"]))
    assert line.endswith(
        f"--out {out} holds a demo run with --epochs 99 (this command: 1); run its command "
        "again to resume it, or add --overwrite to start over"
    )
    assert main([*demo_argv(out, 1, ["ce"]), "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "demo.json").read_text())["--epochs"] == 1
    assert (out / "summary.md").is_file()
    capsys.readouterr()
    line = one_line_error(capsys, [*demo_argv(out, 2, ["ce"]), "--overwrite", "--device", "tpu"])
    assert "unknown device 'tpu'" in line
    assert (out / "summary.md").is_file()  # not deleted by a start that failed


# --------------------------------------------------------------------------- evaluate


def test_constant_explanation_maps_are_counted_and_reported(finished_run, capsys) -> None:
    """With every class weight negative on the CAM layer's (post-ReLU, >= 0) features, each
    Grad-CAM map is negative everywhere before its ReLU: all zero after it. Faithfulness then
    ranks pixels at random, which the report must say."""
    import torch

    state = torch.load(finished_run / "model.pt", weights_only=True)
    state["model"]["fc.weight"] = -state["model"]["fc.weight"].abs() - 0.1
    torch.save(state, finished_run / "model.pt")
    out = finished_run / "report"
    argv = ["evaluate", str(finished_run), "--evaluators", "faithfulness", "--device", "cpu"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    result = json.loads((out / "report.json").read_text())
    faithfulness = result["models"]["ce"]["faithfulness"]
    assert faithfulness["degenerate_maps"] == faithfulness["n_images"] > 0
    said = f"ce: {faithfulness['n_images']} of {faithfulness['n_images']} explanation maps are constant"
    assert len(result["warnings"]) == 1 and result["warnings"][0].startswith(said)
    assert said in (out / "report.md").read_text() and f"warning: {said}" in captured.out
    assert "explanation maps are constant" in captured.err  # logged as it is found


def test_a_run_trained_with_relative_paths_is_evaluated_from_anywhere(
    tmp_path, write_image_folder, monkeypatch, capsys
) -> None:
    """run.json records --data absolute; a missing data folder is named with its flag."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_image_folder(work / "myimgs")
    monkeypatch.chdir(work)
    argv = ["train", "--dataset", "folder", "--data", "myimgs", "--image-size", "16"]
    assert main([*argv, *TRAIN[TRAIN.index("--width") :], "--out", "run"]) == 0
    settings = json.loads((work / "run" / "run.json").read_text())["settings"]
    assert settings["root"] == str(work / "myimgs")
    monkeypatch.chdir(elsewhere)
    evaluate = ["evaluate", str(work / "run"), "--evaluators", "accuracy", "--device", "cpu"]
    assert main([*evaluate, "--no-progress"]) == 0
    (work / "myimgs").rename(work / "moved")
    capsys.readouterr()
    line = one_line_error(capsys, evaluate).split("error: ")[1]
    assert line.startswith(f"--data {work / 'myimgs'}: no image folder at {work / 'myimgs'}")
    assert line.endswith("(recorded by the run; give --data where the data are now)")


def test_the_test_split_has_one_name_and_says_where_it_comes_from(
    tmp_path, write_image_folder, capsys
) -> None:
    """Per epoch and at the end the same split, by the same name; on a folder without val/ the
    user is told that it is held out from train/."""
    root = write_image_folder(tmp_path / "data", n_train=6, n_val=0)
    out = tmp_path / "run"
    argv = ["train", "--dataset", "folder", "--data", str(root), "--image-size", "16"]
    assert main([*argv, *TRAIN[TRAIN.index("--width") :], "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "test split (held out from train/ (20%: there is no val/)): 3 images" in captured.err
    assert "test acc" in captured.err and "test accuracy" in captured.out
    assert "val" not in captured.out and "val acc" not in captured.err
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "test_accuracy" in header and not [name for name in header if "val" in name]
    assert "test_accuracy" in json.loads((out / "results.json").read_text())


# ------------------------------------------------------------------------------- messages


def test_a_switch_that_is_off_by_default_is_not_noted_as_a_default(tmp_path, capsys) -> None:
    argv = ["train", "--dataset", "cifar100", "--data", str(tmp_path), "--device", "cpu"]
    line = one_line_error(capsys, [*argv, "--out", str(tmp_path / "run")])
    assert "pass --download" in line and "False" not in line and "was not given" not in line


def test_tensorboard_missing_names_the_flag(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    line = one_line_error(capsys, [*TRAIN, "--tensorboard", "--out", str(tmp_path / "run")])
    assert line.endswith("--tensorboard needs tensorboard: pip install 'explainaug[tensorboard]'")
    assert not (tmp_path / "run").exists()


def answered_without_torch(argv: list[str]) -> tuple[int, str, list[str]]:
    """Exit code, stderr and the heavy libraries imported when ``explainaug ARGV`` answers."""
    code = (
        "import sys\n"
        "from explainaug.cli import main\n"
        f"code = main({argv!r})\n"
        "print('@@', code, [m for m in ('torch', 'numpy', 'kornia') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=True
    )
    code_text, imported = done.stdout.rsplit("@@ ", 1)[1].split(" ", 1)
    return int(code_text), done.stderr, json.loads(imported.replace("'", '"'))


@pytest.mark.parametrize(
    ("argv", "expected_code", "message"),
    [
        (["demo", "--help"], 0, ""),
        (["train", "--epochs", "-3"], 2, "--epochs must be an int >= 1, got -3"),
        (["demo", "--epochs", "-3"], 2, "--seeds and --epochs must be >= 1"),
    ],
)
def test_help_and_bad_settings_answer_before_torch_loads(argv, expected_code, message) -> None:
    code, stderr, imported = answered_without_torch(argv)
    assert code == expected_code and message in stderr
    assert imported == []
