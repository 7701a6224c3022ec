"""Experiments from plain settings: the one path shared by ``explainaug train``, the recipes and
the demo.

An :class:`Experiment` names a method, a dataset, a model and hyperparameters. ``run`` builds
everything from it, trains with :class:`explainaug.train.Trainer` (DDP under ``torchrun``,
atomic checkpoints, exact resume) and writes ``run.json`` beside the checkpoint, so that
``load_run`` can rebuild the trained model later (``explainaug evaluate``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kornia.augmentation as K
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from explainaug._validation import check_count
from explainaug.augment import SaliencyOcclusion, supcon_views
from explainaug.catalog import CONTRASTIVE_METHODS, LAYER_EXPLAINERS
from explainaug.data import make_loader
from explainaug.data.registry import load_dataset
from explainaug.distributed import per_process_batch_size
from explainaug.evaluate import accuracy
from explainaug.explain import Explainer, resolve_layer
from explainaug.explain.registry import build_explainer
from explainaug.losses import EDDALoss
from explainaug.models import build_model as build_registered_model
from explainaug.models.contrastive import qualify_layer
from explainaug.models.registry import rebuild_model
from explainaug.settings import Experiment
from explainaug.train import (
    EDDA,
    CrossEntropy,
    ExCon,
    Method,
    RandomOcclusionControl,
    SupCon,
    Trainer,
    linear_eval,
)
from explainaug.train.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from explainaug.train.methods.base import model_mean
from explainaug.train.run_log import RUN_FILE, update_description

RESULTS_FILE = "results.json"  # the final test accuracy
WEIGHTS_FILE = "model.pt"  # final weights (after the linear evaluation, when there is one)
REPORT_DIR = "report"  # where `explainaug evaluate` writes by default
# Settings a resumed run may change: where the data is and what is reported, no weight.
RESUME_MAY_CHANGE = ("data_root", "download", "report_best_epoch", "tensorboard")


def load_datasets(
    experiment: Experiment, device: str | torch.device | None = None
) -> tuple[Dataset, Dataset]:
    """The experiment's (train, test) datasets; images in [0, 1], statistics of the train split.

    ``device`` is where the data will live: image folders too large for it stay on disk.

    Example:
        >>> train, test = load_datasets(Experiment(train_size=8, image_size=16))
        >>> len(train), len(test), train.num_classes
        (8, 2, 4)
    """
    return _load_split(experiment, "train", device), _load_split(experiment, "test", device)


def load_test_dataset(experiment: Experiment, device: str | torch.device | None = None) -> Dataset:
    """The experiment's test dataset alone (no training split is read or decoded).

    Example:
        >>> len(load_test_dataset(Experiment(train_size=8, image_size=16)))
        2
    """
    return _load_split(experiment, "test", device)


def load_shortcut_datasets(
    experiment: Experiment, device: str | torch.device | None = None
) -> tuple[Dataset, Dataset]:
    """The cue-aligned and cue-conflicting test sets of a ``shapes`` experiment (same images,
    cues of the image's class vs of another class), for ``explainaug.evaluate.shortcut``.

    Example:
        >>> aligned, conflicting = load_shortcut_datasets(Experiment(train_size=8, image_size=16))
        >>> len(aligned), bool((aligned.images != conflicting.images).any())
        (2, True)
    """
    if experiment.dataset != "shapes":
        raise ValueError(
            f"the shortcut evaluation needs the shapes dataset (its cue testbed), "
            f"got dataset {experiment.dataset!r}"
        )
    return (
        _load_split(dataclasses.replace(experiment, cue_correlation=1.0), "test", device),
        _load_split(dataclasses.replace(experiment, cue_correlation=0.0), "test", device),
    )


def _load_split(experiment: Experiment, split: str, device: str | torch.device | None) -> Dataset:
    return load_dataset(
        experiment.dataset,
        split,
        root=experiment.data_root,
        size=experiment.image_size,
        seed=experiment.seed,
        train_size=experiment.train_size,
        download=experiment.download,
        device=device,
        cue_correlation=experiment.cue_correlation,
    )


def build_model(
    experiment: Experiment, num_classes: int, mean: Sequence[float], std: Sequence[float]
) -> nn.Module:
    """The backbone (normalising with ``mean``/``std`` inside), wrapped in a ``ContrastiveModel``
    for contrastive methods. It has ``num_classes`` outputs, plus EDDA's "background" logit
    (the last) when the experiment trains one (``trains_background``).

    Example:
        >>> model = build_model(Experiment(method="supcon", width=4), 4, (0.5,) * 3, (0.2,) * 3)
        >>> type(model).__name__, model.default_cam_layer
        ('ContrastiveModel', 'encoder.block3')
        >>> background = Experiment(method="edda", salient_target="background", width=4)
        >>> build_model(background, 4, (0.5,) * 3, (0.2,) * 3).fc.out_features
        5
    """
    model = build_registered_model(
        experiment.model,
        num_classes + trains_background(experiment),
        width=experiment.width,
        mean=mean,
        std=std,
        weights=experiment.weights,
        output=model_output(experiment),
        contrastive=experiment.contrastive,
    )
    if experiment.cam_layer is not None:  # the run's CAM layer, in training and evaluation
        model.default_cam_layer = qualify_layer(model, experiment.cam_layer)
        resolve_layer(model, model.default_cam_layer)  # an unknown name fails now, not later
    return model


def model_output(experiment: Experiment) -> int | str | None:
    """``experiment.model_output`` as ``build_model`` takes it: digits as an index, else a key.

    Example:
        >>> model_output(Experiment(model_output="0")), model_output(Experiment(model_output="logits"))
        (0, 'logits')
    """
    value = experiment.model_output
    return int(value) if value is not None and value.isdigit() else value


def trains_background(experiment: Experiment) -> bool:
    """Whether the method trains an extra "background" class (EDDA's
    ``salient_target="background"``), so the model needs ``K + 1`` logits during training.

    Example:
        >>> trains_background(Experiment(method="edda", salient_target="background"))
        True
    """
    opposing = experiment.method == "edda" or (
        experiment.method == "random-occlusion" and experiment.control_targets == "edda"
    )
    return opposing and experiment.salient_target == "background"


def real_class_logits(model: nn.Module, num_classes: int) -> nn.Module:
    """Make ``model(x)`` return only its first ``num_classes`` logits; return ``model``.

    A model trained with EDDA's background class has ``K + 1`` outputs, the last being
    "background". After training, ``run`` and ``load_run`` register this forward hook, so
    accuracy, calibration, robustness and explanations (targets and predicted classes) see the
    ``K`` real classes only; the weights (and checkpoints) keep the background row.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = real_class_logits(SmallCNN(num_classes=5, width=4), 4)
        >>> model(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 4])
    """
    check_count(num_classes, "num_classes")
    model.register_forward_hook(functools.partial(_first_logits, num_classes=num_classes))
    return model


def _first_logits(module: nn.Module, args: Any, logits: Tensor, num_classes: int) -> Tensor:
    return logits[:, :num_classes]


def build_method(experiment: Experiment, model: nn.Module, image_size: int) -> Method:
    """The training method with the experiment's settings, explaining ``model``.

    Example:
        >>> from explainaug.models import SmallCNN
        >>> model = SmallCNN(4, width=4)
        >>> build_method(Experiment(method="edda", occlusion_ratio=0.3), model, 16)
        EDDA(warmup_epochs=0, loss=EDDALoss(salient_target='uniform', nonsalient_weight=1.0, salient_weight=1.0))
    """
    name = experiment.method
    if name in CONTRASTIVE_METHODS:
        views = supcon_views(image_size, scale=(experiment.view_min_scale, 1.0), check_values=False)
        head = {
            "linear_head": experiment.linear_head,
            "head_augment": _resized_crop_flip(image_size) if experiment.head_augment else None,
        }
        if name == "supcon":
            return SupCon(
                temperature=experiment.temperature,
                base_temperature=experiment.base_temperature,
                views=views,
                gather_distributed=experiment.gather_distributed,
                **head,
            )
        return ExCon(
            explainer=_explainer(experiment, model),
            views=views,
            warmup_epochs=experiment.explain_warmup_epochs,
            temperature=experiment.temperature,
            base_temperature=experiment.base_temperature,
            gather_distributed=experiment.gather_distributed,
            **head,
        )
    augment = _crop_flip(image_size) if experiment.augment else None
    if name == "ce":
        return CrossEntropy(augment=augment)
    ratio = experiment.occlusion_ratio
    if name == "edda":
        mean = model_mean(model)
        return EDDA(
            explainer=_explainer(experiment, model),
            loss=EDDALoss(salient_target=experiment.salient_target, check_values=False),
            salient=SaliencyOcclusion(
                "salient", ratio=ratio, fill="mean", mean=mean, check_values=False
            ),
            nonsalient=SaliencyOcclusion(
                "nonsalient", ratio=ratio, fill="mean", mean=mean, check_values=False
            ),
            warmup_epochs=experiment.explain_warmup_epochs,
            augment=augment,
        )
    control_target = "label" if experiment.control_targets == "label" else experiment.salient_target
    return RandomOcclusionControl(
        salient_ratio=ratio,
        nonsalient_ratio=ratio,
        loss=EDDALoss(salient_target=control_target, check_values=False),
        warmup_epochs=experiment.explain_warmup_epochs,
        augment=augment,
    )


def explainer_options(experiment: Experiment) -> dict[str, object]:
    """Constructor options of the run's explainer (``experiment.explainer``): what ExCon/EDDA
    train with and what ``explainaug evaluate`` explains with by default.

    The CAM layer as a dotted name of the built model (None: the model's default) and Grad-CAM's
    ReLU: off for the contrastive methods (the official ExCon code, training and AD/IC, uses
    Captum's LayerGradCam without ReLU), on otherwise (EDDA, and the controls compared with it).
    ``run.json`` records them as ``"explainer"``.

    Example:
        >>> explainer_options(Experiment(method="excon", cam_layer="block2"))
        {'layer': 'encoder.block2', 'relu': False}
    """
    options: dict[str, object] = {}
    if experiment.explainer in LAYER_EXPLAINERS:
        layer = experiment.cam_layer
        if layer is not None and experiment.contrastive:
            layer = f"encoder.{layer}"
        options["layer"] = layer
    if experiment.explainer == "gradcam":
        options["relu"] = not experiment.contrastive
    return options


def _explainer(experiment: Experiment, model: nn.Module) -> Explainer:
    """The live-model explainer of ExCon/EDDA, without per-step value checks (host syncs)."""
    options = explainer_options(experiment)
    return build_explainer(experiment.explainer, model, check_values=False, **options)


def _crop_flip(size: int) -> nn.Module:
    return K.AugmentationSequential(
        K.RandomCrop((size, size), padding=size // 8), K.RandomHorizontalFlip()
    )


def _resized_crop_flip(size: int) -> nn.Module:
    """The official ExCon classifier loader's augmentation (CIFAR-100)."""
    return K.AugmentationSequential(
        K.RandomResizedCrop((size, size), scale=(0.2, 1.0)), K.RandomHorizontalFlip()
    )


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
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> TrainedRun:
    """Train and test the experiment; with ``out_dir``, checkpoint there and write ``run.json``
    and, once training is complete, the final weights ``model.pt``.

    A folder that already holds a run needs ``resume`` (same settings) or ``overwrite``; both
    are checked by :func:`prepare_out_dir` before data or weights are loaded.

    Example:
        >>> result = run(Experiment(epochs=1, width=4, train_size=16, image_size=16,
        ...                         batch_size=8), device="cpu", progress=False)
        >>> [record["epoch"] for record in result.history], result.best_test_accuracy
        ([1], None)
    """
    experiment.validate()
    prepare_out_dir(experiment, out_dir, resume, overwrite)
    torch.manual_seed(experiment.seed)
    train_set, test_set = load_datasets(experiment, device)
    model = build_model(experiment, train_set.num_classes, train_set.mean, train_set.std)
    method = build_method(experiment, model, train_set[0][0].shape[-1])
    trainer = Trainer(
        model,
        method,
        epochs=experiment.epochs,
        lr=experiment.learning_rate,
        weight_decay=experiment.weight_decay,
        warmup_epochs=experiment.lr_warmup_epochs,
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
            "experiment": dataclasses.asdict(experiment),
            "num_classes": train_set.num_classes,
            "real_classes": train_set.num_classes,
            "explainer": {"name": experiment.explainer, **explainer_options(experiment)},
        }
        update_description(out_dir, description)
        (Path(out_dir) / WEIGHTS_FILE).unlink(missing_ok=True)  # final weights come after training
    train_loader = make_loader(
        train_set,
        batch_size,
        shuffle=True,
        drop_last=True,
        device=trainer.device,
        seed=experiment.seed,
    )
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
    if trains_background(experiment):
        real_class_logits(model, train_set.num_classes)
    test_accuracy = float(accuracy(model, test_loader, topk=(1,), per_class=False)["top1"])
    tested = [record["val_accuracy"] for record in history if "val_accuracy" in record]
    best = max(tested) if experiment.report_best_epoch and tested else None
    if out_dir is not None and trainer.context.is_main:
        results = {"test_accuracy": test_accuracy, "epochs": experiment.epochs}
        if best is not None:
            results["best_test_accuracy_over_epochs"] = best
        (Path(out_dir) / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    return TrainedRun(model, history, test_accuracy, experiment, best_test_accuracy=best)


def load_run(
    path: str | Path,
    device: str | torch.device = "cpu",
    data_root: str | None = None,
    dataset: str | None = None,
    image_size: int | None = None,
) -> tuple[nn.Module, Experiment]:
    """Rebuild a trained model from a run folder (or its ``checkpoint.pt``) and its ``run.json``.

    The final weights (``model.pt``) are used when the run finished, else the checkpoint's.
    ``dataset``, ``data_root`` and ``image_size`` replace the recorded data settings (when the
    data moved since training). A run written by ``Trainer`` from Python records the model
    (built by ``explainaug.models.build_model``), its class count and its explainer, but no
    data: name its test data with ``dataset`` (and ``data_root``, ``image_size``).

    Raises:
        FileNotFoundError: no checkpoint or no ``run.json`` where expected.
        ValueError: the checkpoint is unreadable or does not fit the model in ``run.json``,
            or a ``Trainer`` run is loaded without ``dataset``.
    """
    path = Path(path)
    checkpoint_path = path / "checkpoint.pt" if path.is_dir() else path
    run_file = checkpoint_path.parent / RUN_FILE
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint_path}")
    if not run_file.is_file():
        raise FileNotFoundError(
            f"no {RUN_FILE} beside {checkpoint_path}: it records how the "
            "model was built (written by `explainaug train` and by Trainer)"
        )
    try:
        description = json.loads(run_file.read_text())
        if "experiment" in description:
            experiment = Experiment(**description["experiment"])
        else:
            experiment = _trainer_experiment(description, run_file, dataset)
        # the K real classes (the Trainer records the model's outputs, K + 1 with a background)
        num_classes = int(description.get("real_classes", description["num_classes"]))
        for field, value in (("dataset", dataset), ("data_root", data_root)):
            if value is not None:
                setattr(experiment, field, value)
        if image_size is not None:
            experiment.image_size = image_size
        experiment.validate()
    except (json.JSONDecodeError, TypeError, KeyError) as error:
        raise ValueError(f"{run_file} is not a valid run description: {error!r}") from None
    weights_path = checkpoint_path.parent / WEIGHTS_FILE
    if weights_path.is_file():
        state = load_checkpoint(weights_path, map_location=device, required=("model",))
    else:
        state = load_checkpoint(checkpoint_path, map_location=device)
    if "experiment" in description:
        # placeholder statistics: the checkpoint restores the model's Normalize buffers
        model = build_model(experiment, num_classes, (0.0,) * 3, (1.0,) * 3)
    else:
        model = rebuild_model(description["model"])
        if experiment.cam_layer is not None:
            model.default_cam_layer = qualify_layer(model, experiment.cam_layer)
    load_model_state(
        model, state["model"], weights_path if weights_path.is_file() else checkpoint_path
    )
    if trains_background(experiment) or num_classes < description["num_classes"]:
        real_class_logits(model, num_classes)  # a background logit (Experiment or Trainer run)
    return model.to(device).eval(), experiment


METHOD_CLASSES = {
    "ce": CrossEntropy,
    "supcon": SupCon,
    "excon": ExCon,
    "edda": EDDA,
    "random-occlusion": RandomOcclusionControl,
}
"""Method name -> class (``Trainer`` records the class name in ``run.json``)."""


def _trainer_experiment(
    description: dict[str, Any], run_file: Path, dataset: str | None
) -> Experiment:
    """The settings of a run written by ``Trainer`` alone, for evaluation."""
    spec = description.get("model")
    if spec is None:
        raise ValueError(
            f"{run_file} records no model spec: the model was not built by "
            "explainaug.models.build_model; rebuild it and load the checkpoint's 'model' yourself"
        )
    if dataset is None:
        raise ValueError(
            f"{run_file} was written by Trainer and names no data; give the test data "
            "(--dataset, --data, --image-size; dataset= in load_run)"
        )
    names = {cls.__name__: name for name, cls in METHOD_CLASSES.items()}
    explainer = description.get("explainer") or {}
    layer = explainer.get("layer")
    if spec.get("contrastive") and layer is not None:  # a layer of the encoder, by its own name
        layer = layer.removeprefix("encoder.")
    return Experiment(
        method=names.get(description.get("method"), "ce"),
        model=spec["name"],
        width=spec["width"],
        dataset=dataset,
        explainer=explainer.get("name", "gradcam"),
        cam_layer=layer,
    )


def read_run_file(path: Path) -> tuple[Experiment, int]:
    """The ``Experiment`` and class count recorded in a ``run.json``.

    Raises:
        ValueError: the file is not a run description of this version (one line, naming it).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / RUN_FILE
        >>> _ = path.write_text('{"experiment": {"method": "edda"}, "num_classes": 4}')
        >>> read_run_file(path)[0].method, read_run_file(path)[1]
        ('edda', 4)
    """
    try:
        description = json.loads(path.read_text())
        return Experiment(**description["experiment"]), int(description["num_classes"])
    except (ValueError, TypeError, KeyError) as error:
        summary = " ".join(str(error).split())
        raise ValueError(
            f"{path} is not a valid run description ({type(error).__name__}: {summary})"
        ) from None


def check_resumable(experiment: Experiment, checkpoint: Path) -> None:
    """Raise ``ValueError`` naming each setting in which ``experiment`` differs from the run
    recorded beside ``checkpoint`` (its ``run.json``); only ``RESUME_MAY_CHANGE`` may differ.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / RUN_FILE).write_text('{"experiment": {"width": 8}, "num_classes": 4}')
        >>> check_resumable(Experiment(width=16), folder / "checkpoint.pt")
        Traceback (most recent call last):
        ...
        ValueError: cannot resume ... width=8 (this run: 16); ...
    """
    run_file = checkpoint.parent / RUN_FILE
    if not run_file.is_file():  # a bare checkpoint: loading it checks that the weights fit
        return
    if "experiment" not in json.loads(run_file.read_text() or "{}"):  # written by Trainer alone
        return
    recorded, _ = read_run_file(run_file)
    differing = [
        f"{field.name}={getattr(recorded, field.name)!r} "
        f"(this run: {getattr(experiment, field.name)!r})"
        for field in dataclasses.fields(Experiment)
        if field.name not in RESUME_MAY_CHANGE
        and getattr(recorded, field.name) != getattr(experiment, field.name)
    ]
    if differing:
        why = (
            "; epochs sets the learning-rate schedule, so a run cannot be extended"
            if recorded.epochs != experiment.epochs
            else ""
        )
        raise ValueError(
            f"cannot resume {checkpoint}: it was trained with {', '.join(differing)}{why}; "
            "resume with the recorded settings or train into another --out"
        )


def prepare_out_dir(
    experiment: Experiment,
    out_dir: str | Path | None,
    resume: str | Path | None = None,
    overwrite: bool = False,
) -> None:
    """Check, before anything is loaded, that a run may go into ``out_dir`` (and resume from
    ``resume``); with ``overwrite``, delete the files of the run already there.

    Raises:
        ValueError: ``out_dir`` holds a run (weights or step records) and neither
            ``resume`` nor ``overwrite`` is given, ``resume`` names a run with other settings,
            or ``out_dir`` is not writable. The files of a start that failed before its first
            step (``run.json`` alone, or with empty records) are replaced without asking.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / RUN_FILE).write_text("{}")
        >>> _ = (folder / WEIGHTS_FILE).write_bytes(b"")
        >>> prepare_out_dir(Experiment(), folder)
        Traceback (most recent call last):
        ...
        ValueError: ... already holds a run (run.json, model.pt); continue it with --resume auto or replace it with --overwrite
    """
    from explainaug.train.trainer import CHECKPOINT_NAME, LOG_FILE

    folder = None if out_dir is None else Path(out_dir)
    if resume is not None and overwrite:
        raise ValueError("resume and overwrite exclude each other: choose one")
    if resume is not None and (resume != "auto" or folder is not None):
        check_resumable(experiment, folder / CHECKPOINT_NAME if resume == "auto" else Path(resume))
    if folder is None:
        return
    written = [
        name
        for name in (RUN_FILE, CHECKPOINT_NAME, WEIGHTS_FILE, LOG_FILE)
        if (folder / name).is_file()
    ]
    records = folder / LOG_FILE
    if written == [RUN_FILE] or (
        written == [RUN_FILE, LOG_FILE] and records.stat().st_size == 0
    ):  # a start that failed before its first step: no weights or records to protect
        for name in written:
            (folder / name).unlink(missing_ok=True)
        written = []
    if written and resume is None:
        if not overwrite:
            raise ValueError(
                f"{folder} already holds a run ({', '.join(written)}); continue it with "
                "--resume auto or replace it with --overwrite"
            )
        for name in written:  # every torchrun process gets here: tolerate the others' deletions
            (folder / name).unlink(missing_ok=True)
        if (folder / REPORT_DIR / "report.json").is_file():  # the stale report of `evaluate`
            shutil.rmtree(folder / REPORT_DIR, ignore_errors=True)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(
            f"cannot write to the output folder {folder}: {error.strerror or error}"
        ) from None
