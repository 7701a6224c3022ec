"""Train and test an :class:`~explainaug.settings.Experiment`: the one path shared by
``explainaug train``, the recipes and the demo.

``run`` builds everything the settings describe (``explainaug.build``), trains with
:class:`explainaug.train.Trainer` (DDP under ``torchrun``, atomic checkpoints, exact resume),
records the settings in ``run.json`` beside the checkpoint and, once training is complete,
writes the final weights and test accuracy (``explainaug.runs`` reads them back).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explainaug.build import build_method, build_model, load_split, real_class_logits
from explainaug.data import make_loader
from explainaug.distributed import per_process_batch_size
from explainaug.evaluate import accuracy
from explainaug.runs import prepare_out_dir
from explainaug.settings import Experiment, SettingError
from explainaug.train import Trainer, linear_eval
from explainaug.train.checkpoint import save_checkpoint
from explainaug.train.run_log import RESULTS_FILE, WEIGHTS_FILE, update_description


@dataclass
class TrainedRun:
    """The outcome of ``run``: the trained model, the per-epoch history and the final model's
    test accuracy (NaN when the run was interrupted; it resumes from its checkpoint).
    ``best_test_accuracy`` is the best per-epoch test accuracy (with ``report_best_epoch``
    only; None otherwise): model selection on the test set, as the official scripts."""

    model: nn.Module
    history: list[dict[str, Any]]
    test_accuracy: float
    experiment: Experiment
    interrupted: bool = False
    best_test_accuracy: float | None = None


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

    A folder that already holds a run needs ``resume`` (same settings) or ``overwrite``; both
    are checked by ``runs.prepare_out_dir`` before data or weights are loaded.

    Example:
        >>> result = run(Experiment(epochs=1, width=4, train_size=16, image_size=16,
        ...                         batch_size=8), device="cpu", progress=False)
        >>> [record["epoch"] for record in result.history], result.best_test_accuracy
        ([1], None)
    """
    experiment.validate()
    prepare_out_dir(experiment, out_dir, resume, overwrite)
    torch.manual_seed(experiment.seed)
    train_set, test_set = (
        load_split(experiment, "train", device),
        load_split(experiment, "test", device),
    )
    method = build_method(experiment)
    model = build_model(
        experiment, train_set.num_classes, train_set.mean, train_set.std, method.extra_logits
    )
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
    if out_dir is not None and trainer.context.is_main:
        description = {
            "settings": dataclasses.asdict(experiment),
            "num_classes": train_set.num_classes + method.extra_logits,
            "real_classes": train_set.num_classes,
        }
        update_description(out_dir, description)
        (Path(out_dir) / WEIGHTS_FILE).unlink(missing_ok=True)  # final weights come after training
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
    history = trainer.fit(train_loader, test_loader)
    if trainer.interrupted:
        return TrainedRun(model, history, float("nan"), experiment, interrupted=True)
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
    if out_dir is not None and trainer.context.is_main:
        save_checkpoint({"model": model.state_dict()}, Path(out_dir) / WEIGHTS_FILE)
    if method.extra_logits:
        real_class_logits(model, train_set.num_classes)
    test_accuracy = float(accuracy(model, test_loader, topk=(1,), per_class=False)["top1"])
    tested = [record["test_accuracy"] for record in history if "test_accuracy" in record]
    best = max(tested) if experiment.report_best_epoch and tested else None
    if out_dir is not None and trainer.context.is_main:
        results = {"test_accuracy": test_accuracy, "epochs": experiment.epochs}
        if best is not None:
            results["best_test_accuracy_over_epochs"] = best
        (Path(out_dir) / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    return TrainedRun(model, history, test_accuracy, experiment, best_test_accuracy=best)
