"""The demo's shortcut table (`explainaug demo --tables shortcut`)."""

import json

import pytest

from explainaug.cli import main
from explainaug.demo import TABLES

SHORTCUT = TABLES["shortcut"]

ARGS = ["--epochs", "1", "--train-size", "64", "--device", "cpu", "--no-progress"]


def test_shortcut_table_over_seeds(tmp_path, capsys) -> None:
    out = tmp_path / "report"
    argv = ARGS + ["--methods", "ce", "edda", "rrr", "--seeds", "2", "--out", str(out)]
    assert main(["demo", *argv, "--tables", "shortcut"]) == 0
    assert not (out / "summary.json").exists()  # the main table was not asked for
    folder = out / "shortcut"
    for seed in (0, 1):
        run = json.loads((folder / f"seed{seed}" / "runs" / "edda" / "run.json").read_text())
        assert run["settings"]["cue_correlation"] == SHORTCUT.cue_correlation
        assert run["settings"]["explainer"] == "gradcam"  # the report explains with it too
        assert "## Shortcut" in (folder / f"seed{seed}" / "report.md").read_text()
    written = json.loads((folder / "summary.json").read_text())
    assert set(written["summary"]) == {"ce", "edda", "rrr"}
    assert written["trained_with"] == {
        "ce": "labels only",
        "edda": "labels only",
        "rrr": "cue masks",
    }
    assert set(written["summary"]["ce"]) == {line.label for line in SHORTCUT.headlines()}
    gaps = [
        json.loads((folder / f"seed{s}" / "report.json").read_text())["models"]["edda"]["shortcut"][
            "gap"
        ]
        for s in (0, 1)
    ]
    assert written["summary"]["edda"]["gap"]["mean"] == pytest.approx(sum(gaps) / 2, abs=1e-6)
    table = (folder / "summary.md").read_text()
    header = "| method | trained with | accuracy (aligned) | accuracy (conflicting) | gap |"
    assert header in table
    assert "| rrr | cue masks |" in table and "| edda | labels only |" in table
    assert "| edda - ce | gap |" in table and "| rrr - ce | gap |" in table  # paired, over seeds
    assert "| edda | labels only |" in capsys.readouterr().out


def test_shortcut_table_needs_shapes(capsys) -> None:
    assert main(["demo", "--dataset", "digits", "--tables", "shortcut"]) == 2
    assert "--tables shortcut needs --dataset shapes" in capsys.readouterr().err
