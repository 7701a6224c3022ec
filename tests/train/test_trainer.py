"""Trainer: exact resume after SIGTERM, atomic weights-only checkpoints, logging, bad input."""

from __future__ import annotations

import json
import os
import signal

import kornia.augmentation as K
import pytest
import torch

from explainaug.augment import supcon_views
from explainaug.train import CrossEntropy, Method, RandomOcclusionControl, SupCon, Trainer


class SignalAt(Method):
    """Wraps a method and sends SIGTERM to this process during its ``at``-th step."""

    def __init__(self, inner: Method, at: int | None) -> None:
        self.inner, self.at, self.calls = inner, at, 0

    def setup(self, model):
        self.inner.setup(model)

    def training_step(self, model, batch, epoch):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.inner.training_step(model, batch, epoch)

    @property
    def alternating_head(self):
        return self.inner.alternating_head

    def head_step(self, model, batch, epoch):
        return self.inner.head_step(model, batch, epoch)


def train(make_cnn, make_loader, out_dir, stop_at=None, resume=None, epochs=3, inner=None):
    torch.manual_seed(123)  # the model is built seeded; this must not matter for the result
    model = make_cnn()
    # random occlusions draw from the global RNG every step, so a wrong RNG restore shows up
    method = SignalAt(inner() if inner else RandomOcclusionControl(occlusion_ratio=0.3), stop_at)
    trainer = Trainer(
        model,
        method,
        epochs=epochs,
        lr=0.05,
        lr_warmup_epochs=1,
        out_dir=out_dir,
        resume=resume,
        progress=False,
        log_every=2,
        seed=3,
    )
    history = trainer.fit(make_loader())
    return model, trainer, history


@pytest.fixture(autouse=True)
def deterministic():
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous)


@pytest.mark.parametrize("stop_at", [8, 6])  # mid-epoch (epoch 2, step 2) and an epoch's last step
def test_sigterm_then_resume_equals_uninterrupted(make_cnn, make_loader, tmp_path, stop_at):
    reference, _, reference_history = train(make_cnn, make_loader, tmp_path / "full")

    _, stopped, partial = train(make_cnn, make_loader, tmp_path / "cut", stop_at=stop_at)
    assert stopped.interrupted
    checkpoint = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)
    assert checkpoint["global_step"] == stop_at
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored

    resumed, trainer, history = train(make_cnn, make_loader, tmp_path / "cut", resume="auto")
    assert not trainer.interrupted
    assert trainer.method.calls == 18 - stop_at  # it continued; it did not start over
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    drop_time = [{k: v for k, v in r.items() if k != "epoch_time"} for r in history]
    assert drop_time == [
        {k: v for k, v in r.items() if k != "epoch_time"} for r in reference_history
    ]


@pytest.mark.parametrize("stop_at", [8, 6])
def test_resume_with_alternating_head_equals_uninterrupted(
    make_contrastive, make_loader, tmp_path, stop_at
):
    """Random views and a random head augmentation: the head epoch's RNG use must resume too."""

    def supcon() -> SupCon:
        crop_flip = K.AugmentationSequential(
            K.RandomResizedCrop((16, 16), scale=(0.2, 1.0)), K.RandomHorizontalFlip()
        )
        return SupCon(views=supcon_views(16), head_augment=crop_flip)

    def flat(history):
        return [{k: v for k, v in r.items() if k != "epoch_time"} for r in history]

    reference, _, reference_history = train(
        make_contrastive, make_loader, tmp_path / "full", inner=supcon
    )
    assert all("head_loss" in record for record in reference_history)
    _, stopped, _ = train(
        make_contrastive, make_loader, tmp_path / "cut", stop_at=stop_at, inner=supcon
    )
    assert stopped.interrupted
    resumed, _, history = train(
        make_contrastive, make_loader, tmp_path / "cut", resume="auto", inner=supcon
    )
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert flat(history) == flat(reference_history)


class PhaseLog(SupCon):
    """SupCon recording, per step, its phase and the model's state at that point."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.log: list[tuple[str, int, dict[str, torch.Tensor]]] = []

    def _record(self, phase, model, epoch):
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.log.append((phase, epoch, state))

    def training_step(self, model, batch, epoch):
        self._record("train", model, epoch)
        return super().training_step(model, batch, epoch)

    def head_step(self, model, batch, epoch):
        self._record("head", model, epoch)
        return super().head_step(model, batch, epoch)


def test_alternating_head_trains_the_head_alone_after_each_epoch(make_contrastive, make_loader):
    model = make_contrastive()
    augmented: list[torch.Tensor] = []
    method = PhaseLog(
        views=lambda x: torch.stack([x, x.flip(3)], dim=1),
        head_augment=lambda x: augmented.append(x) or x.flip(2),
    )
    loader = make_loader(batch_size=16)  # 3 steps per epoch
    trainer = Trainer(model, method, epochs=2, lr=0.1, progress=False)
    history = trainer.fit(loader, test_loader=loader)
    phases = [(phase, epoch) for phase, epoch, _ in method.log]
    assert phases == [("train", 0)] * 3 + [("head", 0)] * 3 + [("train", 1)] * 3 + [("head", 1)] * 3
    assert len(augmented) == 6  # every head step's images go through head_augment

    def same(a, b, part):
        return all(torch.equal(a[k], b[k]) for k in a if k.startswith(part))

    states = [state for _, _, state in method.log] + [model.state_dict()]
    for index in range(len(states) - 1):
        head_phase = method.log[index][0] == "head"
        # training steps leave the classifier alone; head steps change only the classifier
        # (encoder in eval mode: BatchNorm statistics unchanged, no gradient)
        assert same(states[index], states[index + 1], "classifier") == (not head_phase)
        assert same(states[index], states[index + 1], "encoder") == head_phase
        assert same(states[index], states[index + 1], "head.") == head_phase
    assert all({"head_loss", "head_accuracy"} <= set(record) for record in history)
    assert "probe_loss" not in history[0]
    # validation comes after the head epoch: it is the final model's accuracy
    assert history[-1]["test_accuracy"] == trainer.evaluate(loader)


def test_resume_after_finished_run_changes_nothing(make_cnn, make_loader, tmp_path):
    first, _, history = train(make_cnn, make_loader, tmp_path, epochs=1)
    again, trainer, history_again = train(make_cnn, make_loader, tmp_path, resume="auto", epochs=1)
    assert trainer.method.calls == 0
    assert history_again == history
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in first.state_dict().items())


def test_metrics_file_and_history(make_cnn, make_loader, tmp_path):
    model, _, history = train(make_cnn, make_loader, tmp_path, epochs=2)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    epochs = [line for line in lines if line["kind"] == "epoch"]
    assert [line["epoch"] for line in epochs] == [1, 2] == [r["epoch"] for r in history]
    assert {
        "loss",
        "lr",
        "accuracy",
        "salient_accuracy",
        "nonsalient_accuracy",
        "epoch_time",
    } <= set(epochs[0])
    assert (
        len([line for line in lines if line["kind"] == "step"]) == 2 * 3
    )  # 6 steps/epoch, every 2
    assert history[-1]["step"] == 12


def test_learning_rate_follows_schedule(make_cnn, make_loader):
    model = make_cnn()
    seen = []

    class Recording(CrossEntropy):
        def training_step(self, model, batch, epoch):
            seen.append(trainer.optimizer.param_groups[0]["lr"])
            return super().training_step(model, batch, epoch)

    trainer = Trainer(model, Recording(), epochs=2, lr=0.1, lr_warmup_epochs=1, progress=False)
    trainer.fit(make_loader())
    from explainaug.train import lr_factor

    assert seen == pytest.approx([0.1 * lr_factor(t, 12, 6) for t in range(12)])


def test_validation_accuracy(make_cnn, make_loader):
    model = make_cnn()
    history = Trainer(model, CrossEntropy(), epochs=1, lr=0.05, progress=False).fit(
        make_loader(), test_loader=make_loader()
    )
    correct = sum(int((model.eval()(x).argmax(1) == y).sum()) for x, y, _ in make_loader())
    assert history[0]["test_accuracy"] == pytest.approx(correct / 48)


def test_non_finite_loss_raises(make_cnn, make_loader):
    class Exploding(CrossEntropy):
        def training_step(self, model, batch, epoch):
            loss, metrics = super().training_step(model, batch, epoch)
            return loss * float("nan"), metrics

    trainer = Trainer(make_cnn(), Exploding(), epochs=1, progress=False, log_every=1)
    with pytest.raises(FloatingPointError, match="nan"):
        trainer.fit(make_loader())


# ----------------------------------------------------------------------------- bad input


def test_unknown_amp_mode(make_cnn):
    with pytest.raises(ValueError, match="amp must be one of"):
        Trainer(make_cnn(), CrossEntropy(), epochs=1, amp="fp32")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epochs=0), "epochs"),
        (dict(epochs=2, lr_warmup_epochs=3), "lr_warmup_epochs"),
        (dict(epochs=1, resume="auto"), "out_dir"),
    ],
)
def test_bad_trainer_arguments(make_cnn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(make_cnn(), CrossEntropy(), **kwargs)


def test_method_must_be_a_method(make_cnn):
    with pytest.raises(TypeError, match="Method"):
        Trainer(make_cnn(), lambda model, batch, epoch: None, epochs=1)


@pytest.mark.parametrize(
    "batch, error, match",
    [
        ((torch.rand(2, 3, 16, 16),), ValueError, r"tuple \(x, y\)"),
        (torch.rand(2, 3, 16, 16), ValueError, "tuple"),
        ((torch.rand(3, 16, 16), torch.tensor([0, 1])), ValueError, r"\[B, C, H, W\]"),
        ((torch.rand(2, 3, 16, 16), torch.tensor([0.0, 1.0])), TypeError, "integer"),
        (
            (torch.rand(2, 3, 16, 16), torch.tensor([0, 1, 1])),
            ValueError,
            r"shape \[2\] to match the images",
        ),
        ((torch.rand(2, 3, 16, 16) * 255, torch.tensor([0, 1])), ValueError, r"\[0, 1\]"),
    ],
)
def test_bad_batches(make_cnn, batch, error, match):
    trainer = Trainer(make_cnn(), CrossEntropy(), epochs=1, progress=False)
    with pytest.raises(error, match=match):
        trainer.fit([batch])


def test_loader_without_length(make_cnn):
    trainer = Trainer(make_cnn(), CrossEntropy(), epochs=1, progress=False)
    with pytest.raises(TypeError, match="length"):
        trainer.fit(iter([(torch.rand(2, 3, 16, 16), torch.tensor([0, 1]))]))


def test_resume_from_missing_or_corrupt_file(make_cnn, make_loader, tmp_path):
    with pytest.raises(FileNotFoundError):
        Trainer(make_cnn(), CrossEntropy(), epochs=1, resume=tmp_path / "none.pt").fit(
            make_loader()
        )
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        Trainer(make_cnn(), CrossEntropy(), epochs=1, resume=corrupt).fit(make_loader())


def test_resume_into_a_shorter_run_is_refused(make_cnn, make_loader, tmp_path):
    train(make_cnn, make_loader, tmp_path, epochs=2)
    with pytest.raises(ValueError, match="beyond this run"):
        train(make_cnn, make_loader, tmp_path, resume="auto", epochs=1)


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="nn.Module"):
        Trainer(lambda x: x, CrossEntropy(), epochs=1)


def test_evaluate_restores_each_module_mode(make_cnn, make_loader):
    model = make_cnn().train()
    model.block1.eval()  # e.g. a frozen stem: evaluating must not switch it back to train
    Trainer(model, CrossEntropy(), epochs=1, progress=False).evaluate(make_loader())
    assert model.training and not model.block1.training
    assert all(module.training for module in model.block2.modules())
