"""Run folders: what may go into one, owning one, resuming one, rebuilding its trained model.

A run folder (``--out``) holds ``run.json`` (one layout, see
``explainaug.train.run_log.run_description``), ``checkpoint.pt``, the metrics, and once the run
is complete ``model.pt`` and ``results.json``. A run checks the folder touching nothing
(``check_out_dir``), builds and checks everything else, and only then owns it (``claim_out_dir``:
one process at a time, ``explainaug.lock``). ``load_run`` rebuilds the trained model from it
(``explainaug evaluate``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from explainaug.build import real_class_logits
from explainaug.lock import FolderLock, check_free
from explainaug.models import rebuild_model
from explainaug.settings import Experiment
from explainaug.train.checkpoint import load_checkpoint, load_model_state
from explainaug.train.run_log import (
    CHECKPOINT_FILE,
    LOG_FILE,
    REPORT_DIR,
    RUN_FILE,
    RUN_FILES,
    WEIGHTS_FILE,
)

RESUME_MAY_CHANGE = ("root", "download", "report_best_epoch", "tensorboard")
"""Settings a resumed run may change: where the data is and what is reported, no weight."""


def read_description(path: Path) -> dict[str, Any]:
    """The contents of a ``run.json``.

    Raises:
        ValueError: the file is not a run description (one line, naming it).

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / RUN_FILE
        >>> _ = path.write_text('{"settings": {"method": "edda"}, "num_classes": 4}')
        >>> read_description(path)["settings"]
        {'method': 'edda'}
    """
    try:
        description = json.loads(path.read_text())
        if not isinstance(description, dict) or not isinstance(description["settings"], dict):
            raise TypeError("no settings")
        return description
    except (ValueError, TypeError, KeyError) as error:
        summary = " ".join(str(error).split())
        raise ValueError(
            f"{path} is not a valid run description ({type(error).__name__}: {summary})"
        ) from None


def recorded_experiment(description: dict[str, Any], **replaced: Any) -> Experiment:
    """The :class:`Experiment` a ``run.json`` records, with the ``replaced`` settings (those
    given as None keep the recorded value).

    Raises:
        ValueError: a setting the description does not know (a run of another version).

    Example:
        >>> recorded_experiment({"settings": {"method": "edda"}}, epochs=3).epochs
        3
    """
    fields = {field.name for field in dataclasses.fields(Experiment)}
    settings = description["settings"]
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise ValueError(f"the run records settings this version does not know: {unknown}")
    given = {name: value for name, value in replaced.items() if value is not None}
    return Experiment(**{**settings, **given})


def check_resumable(experiment: Experiment, checkpoint: Path) -> None:
    """Raise ``ValueError`` naming each setting in which ``experiment`` differs from the run
    recorded beside ``checkpoint`` (its ``run.json``); only ``RESUME_MAY_CHANGE`` may differ.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / RUN_FILE).write_text('{"settings": {"width": 8}, "num_classes": 4}')
        >>> check_resumable(Experiment(width=16), folder / CHECKPOINT_FILE)
        Traceback (most recent call last):
        ...
        ValueError: cannot resume ... width=8 (this run: 16); ...
    """
    run_file = checkpoint.parent / RUN_FILE
    if not run_file.is_file():  # a bare checkpoint: loading it checks that the weights fit
        return
    recorded = read_description(run_file)["settings"]
    differing = [
        f"{name}={recorded[name]!r} (this run: {getattr(experiment, name)!r})"
        for name in recorded
        if name not in RESUME_MAY_CHANGE and recorded[name] != getattr(experiment, name, None)
    ]
    if differing:
        why = (
            "; epochs sets the learning-rate schedule, so a run cannot be extended"
            if recorded.get("epochs", experiment.epochs) != experiment.epochs
            else ""
        )
        raise ValueError(
            f"cannot resume {checkpoint}: it was trained with {', '.join(differing)}{why}; "
            "resume with the recorded settings or train into another --out"
        )


def run_files(folder: Path) -> list[str]:
    """The files of a run in ``folder`` (``RUN_FILES`` present, in that order). The files of a
    start that failed before its first step (``run.json`` alone, or with empty records) do not
    count: no weights or records to protect.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / RUN_FILE).write_text("{}")
        >>> run_files(folder)
        []
        >>> _ = (folder / "results.json").write_text("{}")
        >>> run_files(folder)
        ['run.json', 'results.json']
    """
    written = [name for name in RUN_FILES if (folder / name).exists()]
    if written == [RUN_FILE] or (
        written == [RUN_FILE, LOG_FILE] and (folder / LOG_FILE).stat().st_size == 0
    ):
        return []
    return written


def check_out_dir(
    experiment: Experiment,
    out_dir: str | Path | None,
    resume: str | Path | None = None,
    overwrite: bool = False,
) -> None:
    """Check, touching nothing, that a run may go into ``out_dir`` (and resume from ``resume``).

    Raises:
        ValueError: ``out_dir`` holds a run (weights or records) and neither ``resume`` nor
            ``overwrite`` is given, ``resume`` names a run with other settings, or ``out_dir``
            cannot be created or written.
        FolderBusyError: another process runs into ``out_dir`` (the message names it).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / RUN_FILE).write_text("{}")
        >>> _ = (folder / WEIGHTS_FILE).write_bytes(b"")
        >>> check_out_dir(Experiment(), folder)
        Traceback (most recent call last):
        ...
        ValueError: ... already holds a run (run.json, model.pt); continue it with --resume auto or replace it with --overwrite
    """
    folder = None if out_dir is None else Path(out_dir)
    if resume is not None and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: choose one")
    if folder is not None:
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            why = "not a folder" if existing.exists() and not existing.is_dir() else "not writable"
            raise ValueError(f"cannot write to the output folder {folder}: {existing} is {why}")
        check_free(folder)
    if resume is not None and (resume != "auto" or folder is not None):
        check_resumable(experiment, folder / CHECKPOINT_FILE if resume == "auto" else Path(resume))
    if folder is not None:
        _check_contents(folder, resume, overwrite)


def _check_contents(folder: Path, resume: str | Path | None, overwrite: bool) -> None:
    written = run_files(folder) if folder.is_dir() else []
    if written and resume is None and not overwrite:
        raise ValueError(
            f"{folder} already holds a run ({', '.join(written)}); continue it with "
            "--resume auto or replace it with --overwrite"
        )


def claim_out_dir(
    out_dir: str | Path,
    resume: str | Path | None = None,
    overwrite: bool = False,
) -> FolderLock:
    """Own ``out_dir`` (created if missing) for a run that passed its checks: lock it, check it
    again (``check_out_dir``) and, with ``overwrite``, delete every file of the run already
    there (a stale ``evaluate`` report included). Returns the held lock; release it (or use it
    as a context manager) when the run ends.

    Raises:
        ValueError: as ``check_out_dir``; ``FolderBusyError`` (a ``ValueError``) when another
            process owns the folder.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / WEIGHTS_FILE).write_bytes(b"")
        >>> with claim_out_dir(folder, overwrite=True):
        ...     sorted(path.name for path in folder.iterdir())
        ['run.lock']
    """
    folder = Path(out_dir)
    try:
        lock = FolderLock(folder).acquire()
    except OSError as error:
        raise ValueError(
            f"cannot write to the output folder {folder}: {error.strerror or error}"
        ) from None
    try:
        _check_contents(folder, resume, overwrite)  # again: what came in before the lock
        if resume is None:  # a fresh run: nothing of an earlier one stays
            for name in RUN_FILES:
                path = folder / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            for leftover in folder.glob(".*.tmp"):  # a checkpoint write cut short
                leftover.unlink(missing_ok=True)
            if (folder / REPORT_DIR / "report.json").is_file():  # the report of `evaluate`
                shutil.rmtree(folder / REPORT_DIR, ignore_errors=True)
    except BaseException:
        lock.release()
        raise
    return lock


def unfinished(path: str | Path) -> str | None:
    r"""Say so when the ``explainaug train`` run at ``path`` (folder or checkpoint) is unfinished:
    it has no final weights (``model.pt``), so it is evaluated with its last checkpoint. None
    for a finished run, and for runs of ``Trainer``, which writes no final weights.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / RUN_FILE).write_text('{"settings": {"epochs": 12}}')
        >>> _ = (folder / LOG_FILE).write_text('{"kind": "epoch", "epoch": 2}\n')
        >>> unfinished(folder)
        'unfinished run: 2 of 12 epochs trained, no final weights (model.pt); evaluated with its last checkpoint (finish it: explainaug train --resume auto with its --out and settings)'
    """
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    if (folder / WEIGHTS_FILE).is_file() or not (folder / RUN_FILE).is_file():
        return None
    epochs = read_description(folder / RUN_FILE)["settings"].get("epochs")
    if epochs is None:
        return None
    done = 0
    if (folder / LOG_FILE).is_file():
        for line in (folder / LOG_FILE).read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by a kill
                continue
            if isinstance(record, dict) and record.get("kind") == "epoch":
                done = max(done, int(record.get("epoch", 0)))
    return (
        f"unfinished run: {done} of {epochs} epochs trained, no final weights ({WEIGHTS_FILE}); "
        "evaluated with its last checkpoint (finish it: explainaug train --resume auto with "
        "its --out and settings)"
    )


def load_run(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    root: str | None = None,
    dataset: str | None = None,
    image_size: int | None = None,
) -> tuple[nn.Module, Experiment]:
    """Rebuild a trained model from a run folder (or its ``checkpoint.pt``) and its ``run.json``.

    The final weights (``model.pt``) are used when the run finished, else the checkpoint's.
    ``dataset``, ``root`` and ``image_size`` replace the recorded data settings (when the
    data moved since training). A run written by ``Trainer`` from Python records the model
    (built by ``explainaug.models.build_model``), its classes and its explainer, but no data:
    name its test data with ``dataset`` (and ``root``, ``image_size``).

    Raises:
        FileNotFoundError: no checkpoint or no ``run.json`` where expected.
        ValueError: the checkpoint is unreadable or does not fit the model in ``run.json``, the
            model was not built by ``build_model``, or a ``Trainer`` run is loaded without
            ``dataset``.
    """
    path = Path(path)
    checkpoint_path = path / CHECKPOINT_FILE if path.is_dir() else path
    run_file = checkpoint_path.parent / RUN_FILE
    if not checkpoint_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {checkpoint_path}")
    if not run_file.is_file():
        raise FileNotFoundError(
            f"no {RUN_FILE} beside {checkpoint_path}: it records how the "
            "model was built (written by `explainaug train` and by Trainer)"
        )
    description = read_description(run_file)
    if description.get("model") is None:
        raise ValueError(
            f"{run_file} records no model spec: the model was not built by "
            "explainaug.models.build_model; rebuild it and load the checkpoint's 'model' yourself"
        )
    if "dataset" not in description["settings"] and dataset is None:
        raise ValueError(
            f"{run_file} was written by Trainer and names no data; give the test data "
            "(--dataset, --data, --image-size; dataset= in load_run)"
        )
    experiment = recorded_experiment(
        description, dataset=dataset, root=root, image_size=image_size
    ).validate()
    weights_path = checkpoint_path.parent / WEIGHTS_FILE
    if weights_path.is_file():
        state = load_checkpoint(weights_path, map_location=device, required=("model",))
    else:
        state = load_checkpoint(checkpoint_path, map_location=device)
    model = rebuild_model(description["model"])
    load_model_state(
        model, state["model"], weights_path if weights_path.is_file() else checkpoint_path
    )
    real_classes = description.get("real_classes") or description["num_classes"]
    if real_classes < description["num_classes"]:
        real_class_logits(model, real_classes)  # the background logit is not a class
    return model.to(device).eval(), experiment
