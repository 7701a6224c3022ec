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


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, 143), pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)],
)
def test_train_stopped_by_a_signal_exits_with_the_conventional_code(signum, code, tmp_path):
    out = tmp_path / "run"
    process = start([*LONG_TRAIN, "--out", str(out)])
    wait_for(lambda: len(epochs_logged(out)) >= 2, process)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"stopped by {signal.Signals(signum).name}" in stdout and "--resume auto" in stdout
    assert (out / "checkpoint.pt").is_file() and not (out / "model.pt").exists()


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
    ],
)
def test_a_run_that_cannot_start_creates_nothing(option, message, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    line = one_line_error(capsys, [*TRAIN, "--out", str(out), *option])
    assert message in line
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
