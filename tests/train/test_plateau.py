"""A contrastive (or cross-entropy) run still on its loss plateau is never silent: the epoch line
shows the plateau, starting explanations on it is said in one line, and ``explain_start="plateau"``
waits until the loss has left it."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from cli_args import TRAIN

from explainaug.cli import main
from explainaug.losses import ExConLoss, SupConLoss
from explainaug.models import ContrastiveModel, SmallCNN
from explainaug.train import EDDA, ExCon, SupCon
from explainaug.train.methods.base import ExplanationStart, on_plateau, plateau


def test_the_plateau_is_the_loss_of_equal_scores() -> None:
    """Features that are all equal give every anchor the same similarity to every row: the
    package's contrastive losses then equal scale * ln(N - 1), the value a run reports."""
    rows, labels = torch.ones(12, 4) / 2, torch.arange(12) % 3
    for loss in (SupConLoss(0.1), SupConLoss(0.5, None)):
        expected = loss.temperature / loss.base_temperature * math.log(11)
        assert loss(rows, labels).item() == pytest.approx(expected, rel=1e-6)
        assert SupCon(loss=loss).plateau(12) == pytest.approx(expected)
    background = torch.tensor([False] * 10 + [True] * 2)
    excon = ExConLoss(0.1)(rows, labels, background)  # background rows widen the denominators
    assert excon.item() == pytest.approx(0.1 / 0.07 * math.log(11), rel=1e-6)
    assert plateau(4, 1.0) == pytest.approx(torch.log(torch.tensor(4.0)).item())  # CE, K = 4


def test_steps_report_their_plateau() -> None:
    model = ContrastiveModel(SmallCNN(None, width=4), 16, proj_dim=8, num_classes=2)
    views = lambda x: torch.stack([x, x.flip(3)], dim=1)  # noqa: E731
    batch = (torch.rand(8, 3, 16, 16), torch.tensor([0, 1] * 4))
    _, metrics = SupCon(views=views).training_step(model, batch, epoch=0)
    assert metrics["plateau"].item() == pytest.approx(0.1 / 0.07 * math.log(15))
    cnn = SmallCNN(num_classes=3, width=4)
    edda = EDDA(explain_warmup_epochs=1)
    edda.setup(cnn)
    _, metrics = edda.training_step(cnn, batch, epoch=0)  # the cross-entropy warm-up
    assert metrics["plateau"].item() == pytest.approx(math.log(3))


def test_explanations_start_by_epoch_or_once_the_loss_leaves_its_plateau(caplog) -> None:
    flat = {"loss": 1.38, "plateau": math.log(4)}
    learning = {"loss": 0.9, "plateau": math.log(4)}
    assert on_plateau(flat, "loss") and not on_plateau(learning, "loss")
    by_epoch = ExplanationStart(2, "epoch", "EDDA", "loss")
    with caplog.at_level(logging.WARNING, logger="explainaug"):
        assert not by_epoch.update(1, [flat])
        assert by_epoch.update(2, [flat, flat])  # the reference: at the epoch, plateau or not
    assert len(caplog.records) == 1
    assert "EDDA starts using explanations at epoch 3 while its loss 1.3800 is still on its " in (
        caplog.records[0].getMessage()
    )
    waiting = ExplanationStart(2, "plateau", "EDDA", "loss")
    assert [waiting.update(e, [flat] * e) for e in range(5)] == [False] * 5
    history = [flat, flat, flat, learning]  # the 4th epoch left the plateau
    assert [waiting.update(e, history[:e]) for e in range(5)] == [False] * 4 + [True]
    assert waiting.update(2, [flat, learning]) and waiting.active(3) and not waiting.active(1)
    assert not waiting.update(2, [learning, flat])  # back on the plateau before the start
    with pytest.raises(ValueError, match="explain_start must be one of"):
        ExplanationStart(2, "loss", "EDDA", "loss")


def test_the_command_line_shows_the_plateau_and_warns_on_it(tmp_path, capsys) -> None:
    """ExCon at a learning rate too small to learn: the epoch lines put the contrastive loss
    beside its plateau, the start of masking is said; with --explain-start plateau it waits."""
    argv = [*TRAIN, "--method", "excon", "--epochs", "2", "--explain-warmup-epochs", "1"]
    argv += ["--lr", "1e-6", "--linear-epochs", "0"]
    assert main([*argv, "--out", str(tmp_path / "fixed")]) == 0
    err = capsys.readouterr().err
    epoch_lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2 and all("(plateau " in line for line in epoch_lines)
    assert "ExCon starts using explanations at epoch 2 while its loss" in err
    assert "--explain-start plateau" in err  # what to change
    metrics = (tmp_path / "fixed" / "metrics.csv").read_text()
    assert "masked_kept" in metrics  # it masked in epoch 2, as the reference would

    assert main([*argv, "--explain-start", "plateau", "--out", str(tmp_path / "waits")]) == 0
    err = capsys.readouterr().err
    assert "starts using explanations" not in err
    assert "masked_kept" not in (tmp_path / "waits" / "metrics.csv").read_text()


def test_a_resumed_run_decides_the_start_as_the_uninterrupted_one() -> None:
    """The decision depends on the history only, which the checkpoint restores."""
    method = ExCon(explain_warmup_epochs=1, explain_start="plateau")
    history = [{"contrastive_loss": 6.0, "plateau": 6.92}, {"contrastive_loss": 5.0}]
    again = ExCon(explain_warmup_epochs=1, explain_start="plateau")
    method.start_epoch(1, history[:1])
    method.start_epoch(2, history)
    again.start_epoch(2, history)  # resumed at epoch 2: no call for epoch 1
    assert method.start.active_from == again.start.active_from == 1


@pytest.mark.slow
def test_the_demo_settings_leave_the_plateau_on_a_seed_that_stalled() -> None:
    """Seed 1 stalled on the plateau with the former demo settings (lr 0.035, no warm-up: the
    epoch losses stayed at 6.916-6.918 for all 6 epochs at this size, and at full size ExCon
    ended at 0.648 test accuracy). The demo's contrastive settings must leave it in 6 epochs."""
    import dataclasses

    from explainaug.demo import demo_experiment
    from explainaug.experiment import run

    experiment = dataclasses.replace(
        demo_experiment("supcon", "shapes", seed=1, epochs=6, train_size=2000), linear_epochs=1
    )
    history = run(experiment, device="cpu", progress=False).history
    assert history[0]["plateau"] == pytest.approx(0.1 / 0.07 * math.log(127))
    assert on_plateau(history[0], "contrastive_loss")  # it starts on the plateau ...
    assert not on_plateau(history[-1], "contrastive_loss")  # ... and leaves it
