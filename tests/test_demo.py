import json

import pytest

from explainaug.cli import main
from explainaug.demo import TABLES, summarize, summary_markdown

MAIN = TABLES["main"].headlines()


@pytest.mark.slow
def test_demo_trains_evaluates_and_summarizes(tmp_path, capsys) -> None:
    out = tmp_path / "report"
    assert (
        main(
            [
                "demo",
                "--epochs",
                "1",
                "--train-size",
                "64",
                "--methods",
                "ce",
                "excon",
                "--seeds",
                "2",
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    for seed in (0, 1):
        assert (out / f"seed{seed}" / "report.md").is_file()
        assert (out / f"seed{seed}" / "saliency_grid.png").is_file()
    written = json.loads((out / "summary.json").read_text())
    assert set(written["summary"]) == {"ce", "excon"}
    labels = {line.label for line in MAIN}
    assert set(written["summary"]["ce"]) == labels  # every headline, localization included
    accuracy = written["summary"]["excon"]["accuracy"]
    per_seed = [
        json.loads((out / f"seed{s}" / "report.json").read_text())["models"]["excon"]["accuracy"][
            "top1"
        ]
        for s in (0, 1)
    ]
    assert accuracy["seeds"] == 2
    assert accuracy["mean"] == pytest.approx(sum(per_seed) / 2, abs=1e-6)
    assert accuracy["std"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2, abs=1e-6)
    table = (out / "summary.md").read_text()
    assert "| ce |" in table and "| excon |" in table and "±" in table
    # the paired comparison of the two methods run, over the same two seeds
    top1 = {
        name: [
            json.loads((out / f"seed{s}" / "report.json").read_text())["models"][name]["accuracy"][
                "top1"
            ]
            for s in (0, 1)
        ]
        for name in ("ce", "excon")
    }
    difference = sum(e - c for e, c in zip(top1["excon"], top1["ce"], strict=True)) / 2
    assert f"| excon - ce | accuracy | {difference:+.3f} |" in table
    assert "| method | trained with | accuracy |" in capsys.readouterr().out


def test_summary_marks_the_best_value_by_direction() -> None:
    runs = [
        {
            "a": {"accuracy": {"top1": 0.9}, "calibration": {"clean": {"ece": 0.2}}},
            "b": {"accuracy": {"top1": 0.8}, "calibration": {"clean": {"ece": 0.1}}},
        }
    ]
    table = summary_markdown(summarize(runs, MAIN), MAIN)
    assert "| a | **0.900** | 0.200 |" in table  # higher accuracy is better
    assert "| b | 0.800 | **0.100** |" in table  # lower ECE is better


def test_bad_arguments(capsys) -> None:
    assert main(["demo", "--seeds", "0"]) == 2
    assert "--seeds and --epochs must be >= 1" in capsys.readouterr().err


def test_every_paired_comparison_names_a_method() -> None:
    from explainaug.demo import PAIRS
    from explainaug.registry import METHODS

    assert {name for pair in PAIRS for name in pair} <= set(METHODS)


def test_randomized_spearman_is_best_closest_to_zero_and_directions_are_stated() -> None:
    """After full randomization a map should not correlate with the trained one either way:
    -0.200 is no better than 0.137 (a summary bolded the negative value as best)."""

    def results(last: float) -> dict:
        return {"randomization": {"similarity": {"spearman_abs": {"mean": [0.9, last]}}}}

    text = summary_markdown(summarize([{"ce": results(-0.2), "edda": results(0.137)}], MAIN), MAIN)
    assert "randomized Spearman magnitude" in text
    assert "| ce | 0.200 |" in text and "| edda | **0.137** |" in text
    assert (
        "lower is better: " in text
        and "randomized Spearman magnitude" in text.split("lower is better: ")[1]
    )
    tied = summary_markdown(summarize([{"ce": results(0.1), "edda": results(0.1)}], MAIN), MAIN)
    assert "**" not in tied  # nothing is best when every method has the same value
