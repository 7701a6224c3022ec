"""Train and test an :class:`~explainaug.settings.Experiment`: the one path shared by
``explainaug train``, the recipes and the demo.

``run`` builds everything the settings describe (``explainaug.build``), trains with
:class:`explainaug.train.Trainer` (DDP under ``torchrun``, atomic checkpoints, exact resume),
records the settings in ``run.json`` beside the checkpoint and, once training is complete,
writes the final weights and test accuracy (``explainaug.runs`` reads them back).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from explainaug.build import build_method, build_model, load_split, real_class_logits
from explainaug.data import make_loader
from explainaug.distributed import launch_rank, per_process_batch_size
from explainaug.evaluate import accuracy
from explainaug.models.adapt import ModelOutputError
from explainaug.runs import check_out_dir, claim_out_dir
from explainaug.settings import Experiment, SettingError
from explainaug.train import Method, Trainer, linear_eval
from explainaug.train.checkpoint import save_checkpoint
from explainaug.train.run_log import RESULTS_FILE, WEIGHTS_FILE, update_description


@dataclass
class TrainedRun:
    """The outcome of ``run``: the trained model, the per-epoch history and the final model's
    test accuracy (NaN when the run was interrupted, by signal ``stop_signal`` or
    ``Trainer.request_stop``; it resumes from its checkpoint). ``best_test_accuracy`` is the
    best per-epoch test accuracy (with ``report_best_epoch`` only; None otherwise): model
    selection on the test set, as the official scripts."""

    model: nn.Module
    history: list[dict[str, Any]]
    test_accuracy: float
    experiment: Experiment
    interrupted: bool = False
    best_test_accuracy: float | None = None
    stop_signal: int | None = None


def run(
    experiment: Experiment,
    *,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainedRun:
    """Train and test the experiment; with ``out_dir``, checkpoint there and write ``run.json``
    and, once training is complete, the final weights ``model.pt``.

    Nothing is created or changed in ``out_dir`` until the run has started: the folder is
    checked first (``runs.check_out_dir``: a folder holding a run needs ``resume``, same
    settings, or ``overwrite``; a folder another process runs into is refused), then the data,
    method, model, trainer and loaders are built and the model runs one forward pass on
    training images; only then is the folder owned (``runs.claim_out_dir``: locked, and with
    ``overwrite`` emptied of the former run) until the run ends. ``run.json`` records the
    data and weights paths absolute.

    Example:
        >>> result = run(Experiment(epochs=1, width=4, train_size=16, image_size=16,
        ...                         batch_size=8), device="cpu", progress=False)
        >>> [record["epoch"] for record in result.history], result.best_test_accuracy
        ([1], None)
    """
    experiment = absolute_paths(experiment.validate())
    if launch_rank() == 0:  # the process that will own the folder (under torchrun: rank 0)
        check_out_dir(experiment, out_dir, resume, overwrite)
    torch.manual_seed(experiment.seed)
    train_set, test_set = (
        load_split(experiment, "train", device),
        load_split(experiment, "test", device),
    )
    method = build_method(experiment)
    model = build_model(
        experiment, train_set.num_classes, train_set.mean, train_set.std, method.extra_logits
    )
    if experiment.tensorboard:
        _check_tensorboard()
    trainer = Trainer(
        model,
        method,
        epochs=experiment.epochs,
        lr=experiment.learning_rate,
        weight_decay=experiment.weight_decay,
        lr_warmup_epochs=experiment.lr_warmup_epochs,
        amp=experiment.amp,
        out_dir=out_dir,
        resume=resume,
        device=device,
        progress=progress,
        seed=experiment.seed,
        tensorboard=experiment.tensorboard,
    )
    batch_size = per_process_batch_size(experiment.batch_size, trainer.context.world_size)
    try:
        train_loader = make_loader(
            train_set,
            batch_size,
            shuffle=True,
            drop_last=True,
            device=trainer.device,
            seed=experiment.seed,
            cue_masks=experiment.training_masks == "cue",
        )
    except ValueError as error:  # a batch larger than the training set
        raise SettingError("batch_size", f"{experiment.batch_size}: {error}") from None
    test_loader = make_loader(
        test_set, 256, shuffle=False, device=trainer.device, rank=0, world_size=1
    )
    check_forward(model, train_set, trainer.device, experiment)
    owned = out_dir is not None and trainer.context.is_main
    with claim_out_dir(out_dir, resume, overwrite) if owned else contextlib.nullcontext():
        if owned:
            description = {
                "settings": dataclasses.asdict(experiment),
                "num_classes": train_set.num_classes + method.extra_logits,
                "real_classes": train_set.num_classes,
            }
            update_description(out_dir, description)
            for name in (WEIGHTS_FILE, RESULTS_FILE):  # a resumed run's come after training
                (Path(out_dir) / name).unlink(missing_ok=True)
        return _train_and_test(
            experiment, model, method, trainer, train_set, train_loader, test_loader, owned
        )


def _train_and_test(
    experiment: Experiment,
    model: nn.Module,
    method: Method,
    trainer: Trainer,
    train_set: Dataset,
    train_loader: Iterable,
    test_loader: Iterable,
    owned: bool,
) -> TrainedRun:
    """Train (``Trainer.fit``), fit the linear head of a contrastive model, test; in the run
    folder (``owned``), the final weights and test accuracy."""
    out_dir = trainer.out_dir
    history = trainer.fit(train_loader, test_loader)
    if trainer.interrupted:
        return TrainedRun(
            model,
            history,
            float("nan"),
            experiment,
            interrupted=True,
            stop_signal=trainer.stop_signal,
        )
    if experiment.contrastive and experiment.linear_epochs > 0:
        clean_loader = make_loader(
            train_set,
            experiment.batch_size,
            shuffle=True,
            device=trainer.device,
            seed=experiment.seed,
            rank=0,
            world_size=1,
        )
        head = linear_eval(
            model,
            clean_loader,
            test_loader,
            train_set.num_classes,
            epochs=experiment.linear_epochs,
            lr=experiment.linear_lr,
        ).classifier
        model.classifier.load_state_dict(head.state_dict())
    if owned:
        save_checkpoint({"model": model.state_dict()}, out_dir / WEIGHTS_FILE)
    if method.extra_logits:
        real_class_logits(model, train_set.num_classes)
    test_accuracy = float(accuracy(model, test_loader, topk=(1,), per_class=False)["top1"])
    tested = [record["test_accuracy"] for record in history if "test_accuracy" in record]
    best = max(tested) if experiment.report_best_epoch and tested else None
    if owned:
        results = {"test_accuracy": test_accuracy, "epochs": experiment.epochs}
        if best is not None:
            results["best_test_accuracy_over_epochs"] = best
        (out_dir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    return TrainedRun(model, history, test_accuracy, experiment, best_test_accuracy=best)


def absolute_paths(experiment: Experiment) -> Experiment:
    """``experiment`` with its paths (``--data``, ``--weights``, ``--masks``, ``--cue-masks``,
    ``--previous-runs``) absolute, so that ``run.json`` finds them from any working directory.

    Example:
        >>> absolute_paths(Experiment(root="data")).root == str(Path("data").absolute())
        True
        >>> runs = absolute_paths(Experiment(annotation="previous", previous_runs="r0,r1")).previous_runs
        >>> runs == f"{Path('r0').absolute()},{Path('r1').absolute()}"
        True
    """
    return dataclasses.replace(
        experiment,
        **{
            name: ",".join(str(Path(path).expanduser().absolute()) for path in value.split(","))
            for name in ("root", "weights", "masks", "cue_masks", "previous_runs")
            if (value := getattr(experiment, name)) is not None
        },
    )


def check_forward(
    model: nn.Module, train_set: Dataset, device: torch.device, experiment: Experiment
) -> None:
    """Run the model once (eval mode, no gradient, no state changed) on two training images at
    the run's input size, so that a model that cannot take them (a ViT's fixed size, say)
    fails in one line before the run starts.

    Raises:
        ValueError: the forward pass failed; names ``--model`` and ``--image-size``.

    Example:
        >>> from explainaug.data import shapes
        >>> experiment = Experiment(model="torchvision:vit_b_16", image_size=16)
        >>> model = build_model(experiment, 4, (0.5,) * 3, (0.2,) * 3)
        >>> check_forward(model, shapes(8, size=16), torch.device("cpu"), experiment)
        Traceback (most recent call last):
        ...
        ValueError: --model torchvision:vit_b_16 cannot take this run's 16x16 images (--image-size 16): ...
    """
    images = torch.stack([train_set[index][0] for index in range(min(2, len(train_set)))])
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(images.to(device))
    except ModelOutputError:
        raise
    except (RuntimeError, AssertionError, ValueError, TypeError, IndexError) as error:
        size = "x".join(str(side) for side in images.shape[-2:])
        summary = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(
            f"--model {experiment.model} cannot take this run's {size} images (--image-size "
            f"{experiment.image_size}): {summary}"
        ) from None
    finally:
        model.train(training)


def _check_tensorboard() -> None:
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        raise SettingError(
            "tensorboard", "needs tensorboard: pip install 'explainaug[tensorboard]'"
        ) from None
