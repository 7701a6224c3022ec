"""Adding a method is one module plus one registry entry: a method defined here trains through the
path `explainaug train --method NAME` takes, gets its settings from the flags, and evaluates."""

from __future__ import annotations

import json

import pytest
import torch.nn.functional as F
from cli_args import TRAIN
from torch import Tensor, nn

from explainaug._shared import unpack_batch
from explainaug.cli import main
from explainaug.registry import METHODS, MethodEntry
from explainaug.train import Method

SEEN: list[dict] = []


class LabelNoise(Method):
    """Cross-entropy against labels replaced by a random class with probability
    ``occlusion_ratio`` (any setting of the command line can be a method's keyword)."""

    def __init__(self, *, occlusion_ratio: float = 0.2, augment: bool = True) -> None:
        self.occlusion_ratio = occlusion_ratio
        SEEN.append({"occlusion_ratio": occlusion_ratio, "augment": augment})

    def training_step(self, model: nn.Module, batch: object, epoch: int) -> tuple[Tensor, dict]:
        x, y, *_ = unpack_batch(batch)
        logits = model(x)
        swap = (y.new_empty(y.shape, dtype=x.dtype).uniform_() < self.occlusion_ratio).long()
        noisy = y + swap * (y.new_empty(y.shape).random_(logits.shape[1]) - y)
        return F.cross_entropy(logits, noisy), {"noise": swap.float().mean()}


@pytest.fixture
def registered():
    METHODS.register("label-noise", MethodEntry(f"{__name__}:LabelNoise", "noisy labels"))
    yield
    METHODS.unregister("label-noise")
    SEEN.clear()


def test_a_registered_method_trains_and_evaluates_from_the_command_line(
    registered, tmp_path, capsys
) -> None:
    out = tmp_path / "run"
    argv = [*TRAIN, "--method", "label-noise", "--occlusion-ratio", "0.5", "--no-augment"]
    assert main([*argv, "--out", str(out)]) == 0
    assert SEEN == [{"occlusion_ratio": 0.5, "augment": False}]  # the flags, by keyword
    assert "label-noise on shapes: test accuracy" in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["settings"]["method"] == "label-noise"
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "noise" in records[-1]  # the method's own metric, logged by the Trainer
    report = tmp_path / "report"
    argv = ["evaluate", str(out), "--evaluators", "accuracy", "--device", "cpu"]
    assert main([*argv, "--out", str(report)]) == 0
    assert "label-noise" in json.loads((report / "report.json").read_text())["models"]


def test_an_unregistered_method_is_refused_by_name(capsys) -> None:
    assert main([*TRAIN, "--method", "label-noise"]) == 2
    assert "invalid choice: 'label-noise'" in capsys.readouterr().err
