"""The shortcut testbed through the command line: train on cued shapes, evaluate the shortcut."""

import json

import pytest
from cli_args import TRAIN

from explainaug.build import load_split
from explainaug.cli import main
from explainaug.runs import load_run
from explainaug.settings import Experiment


def test_train_on_cued_shapes_then_evaluate_the_shortcut(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    assert (
        main(TRAIN + ["--dataset", "shapes", "--cue-correlation", "0.95", "--out", str(run_dir)])
        == 0
    )
    _, experiment = load_run(run_dir)
    assert experiment.cue_correlation == 0.95
    train, test = load_split(experiment, "train"), load_split(experiment, "test")
    assert train.cue_masks is not None and test.cue_masks is not None
    out = tmp_path / "report"
    argv = ["evaluate", str(run_dir), "--evaluators", "accuracy", "shortcut", "--out", str(out)]
    assert main(argv + ["--device", "cpu"]) == 0
    results = json.loads((out / "report.json").read_text())
    result = results["models"]["ce"]["shortcut"]
    assert result["aligned"]["n_images"] == result["conflicting"]["n_images"] == 4
    assert result["gap"] == pytest.approx(
        result["aligned"]["accuracy"] - result["conflicting"]["accuracy"]
    )
    assert "shortcut.png" in results["figures"]
    assert "## Shortcut" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cue-correlation", "1.5"], "--cue-correlation must be a number in [0, 1], got 1.5"),
        (["--cue-correlation", "-0.5"], "--cue-correlation must be a number in [0, 1], got -0.5"),
        (
            ["--dataset", "digits", "--cue-correlation", "0.5"],
            "--cue-correlation needs the shapes dataset, got dataset 'digits'",
        ),
    ],
)
def test_bad_cue_correlation_exits_with_a_clear_error(argv, message, tmp_path, capsys) -> None:
    code = main(TRAIN + argv + ["--out", str(tmp_path / "run")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_experiment_field_is_checked() -> None:
    with pytest.raises(ValueError, match=r"cue_correlation must be a number in \[0, 1\], got 2"):
        Experiment(cue_correlation=2).validate()
    assert Experiment().cue_correlation is None  # default: today's data


def test_shortcut_needs_a_shapes_run(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--width", "4", "--epochs", "1", "--device", "cpu"]
    assert main(argv + ["--no-progress", "--out", str(run_dir)]) == 0
    assert main(["evaluate", str(run_dir), "--evaluators", "shortcut", "--device", "cpu"]) == 2
    assert "shortcut evaluation needs the shapes dataset" in capsys.readouterr().err
