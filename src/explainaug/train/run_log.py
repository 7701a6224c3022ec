"""What a run leaves behind besides checkpoints: the epoch summary line, ``metrics.csv``,
TensorBoard events and the ``run.json`` description that ``explainaug evaluate`` reads."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

# The files of a run folder (``--out``), written by the Trainer and ``explainaug train``.
RUN_FILE = "run.json"  # how to rebuild and explain the model (``run_description``)
CHECKPOINT_FILE = "checkpoint.pt"  # model, optimizer, position, RNG states: exact resume
LOG_FILE = "metrics.jsonl"  # step and epoch records
CSV_FILE = "metrics.csv"  # one row per epoch
TENSORBOARD_DIR = "tensorboard"
WEIGHTS_FILE = "model.pt"  # final weights (after the linear evaluation, when there is one)
RESULTS_FILE = "results.json"  # the final test accuracy
REPORT_DIR = "report"  # where ``explainaug evaluate`` writes by default
RUN_FILES = (
    RUN_FILE,
    CHECKPOINT_FILE,
    WEIGHTS_FILE,
    LOG_FILE,
    CSV_FILE,
    RESULTS_FILE,
    TENSORBOARD_DIR,
)
"""What a run writes into its folder: a fresh run (``--overwrite``) deletes all of them."""


def epoch_line(record: dict[str, Any], epochs: int) -> str:
    """One line summing up an epoch: loss (and, where the method reports it, the plateau of an
    untrained model's loss beside it), learning rate, train and test accuracy.

    Train accuracy is the method's ``accuracy`` (cross-entropy methods) or ``probe_accuracy``
    (the online linear probe of contrastive methods).

    Example:
        >>> epoch_line({"epoch": 2, "loss": 0.5, "lr": 0.1, "accuracy": 0.75,
        ...             "test_accuracy": 0.5, "epoch_time": 3.0}, epochs=10)
        'epoch 2/10  loss 0.5000  lr 0.1  train acc 0.7500  test acc 0.5000  3.0 s'
        >>> epoch_line({"epoch": 1, "loss": 6.95, "contrastive_loss": 6.91, "plateau": 6.92,
        ...             "lr": 0.1}, epochs=10)
        'epoch 1/10  loss 6.9500  contrastive 6.9100 (plateau 6.9200)  lr 0.1  0.0 s'
    """
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['loss']:.4f}"]
    if "plateau" in record:
        if "contrastive_loss" in record:
            parts.append(f"contrastive {record['contrastive_loss']:.4f}")
        parts[-1] += f" (plateau {record['plateau']:.4f})"
    parts.append(f"lr {record['lr']:.4g}")
    train = record.get("accuracy", record.get("probe_accuracy"))
    if train is not None:
        parts.append(f"train acc {train:.4f}")
    if record.get("test_accuracy") is not None:
        parts.append(f"test acc {record['test_accuracy']:.4f}")
    parts.append(f"{record.get('epoch_time', 0.0):.1f} s")
    return "  ".join(parts)


def write_csv(path: str | Path, history: Sequence[dict[str, Any]]) -> None:
    """Write the epoch records as CSV (one row per epoch; columns: every key seen, in order of
    first appearance, so metrics that start later, e.g. after a warm-up, get a column too).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_csv(f"{folder}/m.csv", [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "x": 1}])
        ...     print(open(f"{folder}/m.csv").read().split())
        ['epoch,loss,x', '1,2.0,', '2,,1']
    """
    columns: dict[str, None] = {}
    for record in history:
        columns.update(dict.fromkeys(record))
    temporary = Path(f"{path}.tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(history)
    os.replace(temporary, path)


class TensorBoardLog:
    """Epoch metrics as TensorBoard scalars under ``out_dir/tensorboard`` (needs the
    ``tensorboard`` extra: ``pip install 'explainaug[tensorboard]'``). Creating it checks that
    tensorboard is installed; the folder is written with the first record."""

    def __init__(self, out_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImportError(
                "tensorboard=True needs tensorboard: pip install 'explainaug[tensorboard]'"
            ) from None
        self.folder = Path(out_dir) / TENSORBOARD_DIR
        self._writer_class = SummaryWriter
        self.writer: Any = None

    def write(self, record: dict[str, Any]) -> None:
        """Add every number of an epoch record at step ``record["epoch"]``."""
        if self.writer is None:
            self.writer = self._writer_class(str(self.folder))
        for key, value in record.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, record["epoch"])
        self.writer.flush()


def run_description(model: nn.Module, method: Any, seed: int) -> dict[str, Any]:
    """What evaluation needs to rebuild and explain a trained model, in ``run.json``'s layout:

    - ``settings``: the run's settings, by the names of ``explainaug.settings.Experiment``
      (``explainaug train`` records all of them; the Trainer records those it knows: the
      method's registry name, the model, the explainer its training used and its CAM layer as
      given, None for the model's default, chosen again the same way);
    - ``model``: the model spec (from ``explainaug.models.build_model``; None for other
      models), which rebuilds it;
    - ``num_classes``: its outputs, and ``real_classes``: the dataset's classes (without the
      method's ``extra_logits``).

    Example:
        >>> from explainaug.models import build_model
        >>> from explainaug.train import EDDA
        >>> method = EDDA(cam_layer="block2")
        >>> model = build_model("small-cnn", 3, width=4)
        >>> method.setup(model)
        >>> description = run_description(model, method, seed=0)
        >>> description["num_classes"], description["settings"]["cam_layer"]
        (3, 'block2')
    """
    from explainaug.registry import METHODS
    from explainaug.train.methods.base import explainer_record

    spec = getattr(model, "model_spec", None)
    names = [name for name, entry in METHODS.items() if entry.load() is type(method)]
    settings: dict[str, Any] = {"method": names[0] if names else type(method).__name__}
    settings["seed"] = seed
    if spec is not None:
        output = spec["output"]
        settings.update(
            model=spec["name"],
            width=spec["width"],
            model_output=None if output is None else str(output),
        )
    explainer = explainer_record(method.live_explainer)
    if explainer is not None:
        settings.update(explainer=explainer["name"], cam_layer=explainer.get("layer"))
    num_classes = None if spec is None else spec["num_classes"]
    return {
        "settings": settings,
        "model": spec,
        "num_classes": num_classes,
        "real_classes": None if num_classes is None else num_classes - method.extra_logits,
    }


def update_description(out_dir: str | Path, description: dict[str, Any]) -> None:
    """Merge ``description`` into ``out_dir/run.json``, keeping what it does not set. The
    ``settings`` are merged one by one, those already recorded kept: ``explainaug train``
    records every setting as given before the Trainer adds what it knows (its CAM layer, say,
    as resolved), and a resumed run's settings stay as they were."""
    path = Path(out_dir) / RUN_FILE
    existing = json.loads(path.read_text()) if path.is_file() else {}
    settings = {**description.get("settings", {}), **existing.get("settings", {})}
    existing.update({k: v for k, v in description.items() if v is not None or k not in existing})
    existing["settings"] = settings
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(f"{path}.tmp")
    temporary.write_text(json.dumps(existing, indent=2))
    os.replace(temporary, path)
