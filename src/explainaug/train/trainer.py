"""A thin training loop: AMP, DDP under torchrun, atomic checkpoints, exact resume, progress."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from explainaug._shared import unpack_batch
from explainaug._validation import check_count, check_images, check_labels
from explainaug.distributed import (
    DistributedContext,
    gather_objects,
    global_sum,
    setup_distributed,
)
from explainaug.evaluate.accuracy import accuracy
from explainaug.lock import FolderLock
from explainaug.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)
from explainaug.train.methods.base import Method
from explainaug.train.run_log import (
    CHECKPOINT_FILE,
    CSV_FILE,
    LOG_FILE,
    TensorBoardLog,
    epoch_line,
    run_description,
    update_description,
    write_csv,
)
from explainaug.train.schedule import lr_factor

AMP_MODES = ("auto", "bf16", "fp16", None)
logger = logging.getLogger("explainaug")


@dataclass
class ResumePosition:
    """Where a run continues: the epoch and step, the history so far and, mid-epoch, the RNG
    states and the partial metric sums of that epoch (the checkpoint stores the same fields).

    Example:
        >>> ResumePosition().epoch, ResumePosition().history
        (0, [])
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    rng: dict[str, Any] | None = None
    epoch_rng: dict[str, Any] | None = None
    sums: dict[str, Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0


class _MethodStep(nn.Module):
    """Runs ``method.training_step`` as a module forward, so DDP can wrap the whole step."""

    def __init__(self, model: nn.Module, method: Method) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(
        self, batch: Any, epoch: int, head: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        step = self.method.head_step if head else self.method.training_step
        return step(self.model, batch, epoch)


class Trainer:
    """Train ``model`` with ``method`` for ``epochs`` epochs.

    - **Schedule**: SGD (unless ``optimizer`` is given), learning rate set every iteration:
      linear warm-up over ``lr_warmup_epochs``, then cosine decay to ``lr * final_lr_ratio``
      (SupContrast). A given optimizer keeps its groups' learning rates as the base rates.
    - **Mixed precision**: ``amp="auto"`` uses bf16 autocast on CUDA (fp16 with a
      ``GradScaler`` where bf16 is unsupported) and full precision on the CPU; ``"bf16"`` and
      ``"fp16"`` force a type on CUDA; autocast never runs on the CPU.
    - **DDP**: under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) each process joins the
      group (NCCL on CUDA, gloo on CPU) and the method's whole step runs inside
      ``DistributedDataParallel``'s forward. The loader must shard by rank (``DeviceLoader``
      does, or a ``DistributedSampler``); ``set_epoch`` is called every epoch. One code path
      serves 1 and N processes. Rank 0 logs, shows progress and writes checkpoints.
    - **Checkpoints**: ``out_dir/checkpoint.pt`` after every ``checkpoint_every`` epochs and on
      SIGTERM/SIGINT (the handler sets a flag; the loop saves at the next step boundary and
      returns; a second Ctrl-C raises ``KeyboardInterrupt``). Writes are atomic and files load
      with ``weights_only=True``. They hold model, optimizer and scaler states, the position
      (epoch, step in epoch, global step), every rank's RNG states (torch, CUDA, numpy,
      Python) at that step and at the start of its epoch, the epoch's metric sums and the
      history, and the method's ``state_dict()``. ``resume`` (a path, or ``"auto"`` for ``out_dir/checkpoint.pt`` if present)
      continues exactly: the loader's epoch order is rebuilt from the epoch-start RNG state and
      ``set_epoch``, consumed batches are skipped, then the step's RNG state is restored, so a
      resumed deterministic run equals the uninterrupted one.
    - **Alternating head**: for a method with ``alternating_head`` (SupCon/ExCon by default),
      each epoch's training steps are followed by one epoch of ``method.head_step`` over the
      same loader (SupContrast's and ExCon's linear-head epoch), with the same optimizer at
      the learning rate the epoch ended with; its metrics join the epoch's record, the
      test accuracy is measured after it and checkpoints at epoch ends include it.
      A stop request during the head epoch takes effect at the next training step.
    - **Metrics** (loss, lr, the method's metrics, epoch time, test accuracy) are summed
      on the device and synchronised once per ``log_every`` steps and per epoch; rank 0 appends
      them to ``out_dir/log_file`` (JSON lines) and shows them in a tqdm bar. A non-finite loss
      raises ``FloatingPointError`` at the next synchronisation. After each epoch rank 0 logs
      one summary line (loss, lr, train and test accuracy) to the ``explainaug`` logger
      at INFO, rewrites ``out_dir/metrics.csv`` (one row per epoch) and, with ``tensorboard``,
      writes TensorBoard scalars to ``out_dir/tensorboard``.
    - **Run description**: ``out_dir/run.json`` records the model spec (models from
      ``explainaug.models.build_model``), the class count, the method and its explainer
      settings, so ``explainaug evaluate`` can rebuild and explain the model.

    Args:
        model: the model; moved to ``device``.
        method: a ``Method`` (``CrossEntropy``, ``SupCon``, ``ExCon``, ``EDDA``, ...).
        epochs: number of epochs.
        optimizer: optimizer over the model's parameters; None builds SGD.
        lr: base learning rate of the default SGD.
        momentum: SGD momentum.
        weight_decay: SGD weight decay (1e-4 as SupContrast/ExCon).
        lr_warmup_epochs: epochs of linear learning-rate warm-up.
        final_lr_ratio: learning rate at the end, relative to the base rate.
        amp: ``"auto"``, ``"bf16"``, ``"fp16"`` or None.
        out_dir: where checkpoints and metrics go; None writes no files.
        resume: None, a checkpoint path, or ``"auto"``.
        checkpoint_every: epochs between checkpoints.
        device: the device; None picks ``cuda:LOCAL_RANK`` when available, else the CPU.
        log_file: name of the JSON-lines metrics file inside ``out_dir``.
        log_every: steps between metric synchronisations.
        progress: show a tqdm bar on rank 0.
        seed: seeds torch, numpy and Python (plus the rank) at the start of a fresh run.
        find_unused_parameters: passed to DDP (needed when a step leaves parameters unused,
            e.g. cross-entropy on a ``ContrastiveModel``, whose projection head is then idle);
            always on for methods with an alternating head (each phase trains part of the model).
        tensorboard: also write epoch metrics as TensorBoard events (the ``tensorboard`` extra).

    Example:
        >>> from explainaug.models import SmallCNN
        >>> from explainaug.train import CrossEntropy
        >>> model = SmallCNN(num_classes=2, width=4)
        >>> batches = [(torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 0, 1]))] * 2
        >>> history = Trainer(model, CrossEntropy(), epochs=2, lr=0.01, progress=False).fit(batches)
        >>> [record["epoch"] for record in history]
        [1, 2]
    """

    def __init__(
        self,
        model: nn.Module,
        method: Method,
        epochs: int,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        lr_warmup_epochs: int = 0,
        final_lr_ratio: float = 1e-3,
        amp: str | None = "auto",
        out_dir: str | Path | None = None,
        resume: str | Path | None = None,
        checkpoint_every: int = 1,
        device: str | torch.device | None = None,
        log_file: str = LOG_FILE,
        log_every: int = 50,
        progress: bool = True,
        seed: int = 0,
        find_unused_parameters: bool = False,
        tensorboard: bool = False,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(method, Method):
            raise TypeError(
                f"method must be an explainaug.train Method, got {type(method).__name__}"
            )
        for name, value in (
            ("epochs", epochs),
            ("checkpoint_every", checkpoint_every),
            ("log_every", log_every),
        ):
            check_count(value, name)
        check_count(lr_warmup_epochs, "lr_warmup_epochs", minimum=0, maximum=epochs)
        if amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
        if resume == "auto" and out_dir is None:
            raise ValueError('resume="auto" needs out_dir (where the checkpoint lives)')
        prepared = method.prepare(model)
        if prepared is not model and optimizer is not None:
            raise ValueError(
                f"{type(method).__name__} wrapped the model (adding parameters) after the "
                "optimizer was built; pass optimizer=None or the wrapped model "
                "(e.g. ContrastiveModel.from_classifier(model))"
            )
        model = prepared

        self.context: DistributedContext = setup_distributed(device)
        self.device = self.context.device
        self.model = model.to(self.device)
        self.method = method
        self.epochs = epochs
        self.lr_warmup_epochs = lr_warmup_epochs
        self.final_lr_ratio = final_lr_ratio
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.resume = resume
        self.checkpoint_every = checkpoint_every
        self.log_file = log_file
        self._board = (
            TensorBoardLog(out_dir)
            if tensorboard and out_dir is not None and self.context.is_main
            else None
        )
        self.log_every = log_every
        self.progress = progress
        self.seed = seed
        self.interrupted = False
        self.stop_signal: int | None = None
        self._stop_requested = False

        self.amp_dtype = _amp_dtype(amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        if optimizer is None:
            optimizer = torch.optim.SGD(
                model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
            )
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])

        method.setup(model)
        step: nn.Module = _MethodStep(model, method)
        if self.context.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            step = DistributedDataParallel(
                step,
                device_ids=device_ids,
                find_unused_parameters=find_unused_parameters or method.alternating_head,
            )
        self._step_module = step

    # ----------------------------------------------------------------------------- public API

    @property
    def checkpoint_path(self) -> Path | None:
        """``out_dir/checkpoint.pt`` (None without ``out_dir``)."""
        return None if self.out_dir is None else self.out_dir / CHECKPOINT_FILE

    def request_stop(self) -> None:
        """Ask the loop to checkpoint and return at the next step boundary (what SIGTERM does)."""
        self._stop_requested = True

    def fit(
        self, train_loader: Iterable, test_loader: Iterable | None = None
    ) -> list[dict[str, Any]]:
        """Train; return the history (one record per epoch: loss, lr, metrics, time, accuracy).

        ``train_loader`` yields ``(x, y)`` or ``(x, y, masks)`` batches with images in [0, 1]
        and must have a length (steps per epoch). When the run is stopped by a signal or
        ``request_stop``, ``fit`` checkpoints, sets ``self.interrupted`` (and ``self.stop_signal``
        to the signal's number) and returns early. While it trains, this process alone owns
        ``out_dir`` (``explainaug.lock.FolderLock``; another process's run into it is refused).
        """
        try:
            steps_per_epoch = len(train_loader)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(
                "train_loader must have a length (batches per epoch), got "
                f"{type(train_loader).__name__}"
            ) from None
        if steps_per_epoch < 1:
            raise ValueError("train_loader yields no batches")
        self._total_steps = self.epochs * steps_per_epoch
        self._warmup_steps = self.lr_warmup_epochs * steps_per_epoch
        self.interrupted = False
        self.stop_signal = None
        self._stop_requested = False

        owned = self.out_dir is not None and self.context.is_main
        with FolderLock(self.out_dir) if owned else contextlib.nullcontext():
            position = self._restore()
            if owned:
                update_description(
                    self.out_dir, run_description(self.model, self.method, self.seed)
                )
            if position.global_step == 0:
                self.method.begin(self.model, train_loader)
            handlers = self._install_signal_handlers()
            try:
                return self._train(train_loader, test_loader, steps_per_epoch, position)
            finally:
                for signum, handler in handlers.items():
                    signal.signal(signum, handler)

    # ------------------------------------------------------------------------------ the loop

    def _train(
        self,
        train_loader: Iterable,
        test_loader: Iterable | None,
        steps_per_epoch: int,
        position: ResumePosition,
    ) -> list[dict[str, Any]]:
        history = position.history
        start_epoch, skip = position.epoch, position.step_in_epoch
        self._global_step = position.global_step
        for epoch in range(start_epoch, self.epochs):
            self.method.start_epoch(epoch, history)
            _set_epoch(train_loader, epoch)
            if skip:
                restore_rng_state(position.epoch_rng, self.device)
            epoch_rng = capture_rng_state(self.device)
            sums: dict[str, Tensor] = position.sums if skip else {}
            counts: dict[str, int] = position.counts if skip else {}
            elapsed = position.elapsed if skip else 0.0
            started = time.perf_counter()
            self.model.train()
            batches = _skipped(iter(train_loader), skip)
            if skip:
                restore_rng_state(position.rng, self.device)
            bar = tqdm(
                total=steps_per_epoch,
                initial=skip,
                desc=f"epoch {epoch + 1}/{self.epochs}",
                disable=not (self.progress and self.context.is_main),
                leave=False,
            )
            with bar:
                for index, batch in enumerate(batches, start=skip):
                    if index >= steps_per_epoch:
                        break
                    loss, metrics = self._optimisation_step(batch, epoch, first=index == skip)
                    _accumulate(sums, counts, {"loss": loss, **metrics})
                    bar.update(1)
                    if (index + 1) % self.log_every == 0:
                        summary = self._summarise(sums, counts, reduce=False)
                        bar.set_postfix({k: f"{v:.4g}" for k, v in summary.items()})
                        self._log(
                            {
                                "kind": "step",
                                "epoch": epoch + 1,
                                "step": self._global_step,
                                "lr": self._current_lr(),
                                **summary,
                            }
                        )
                    if self._should_stop(index + 1, steps_per_epoch):
                        self._save(
                            epoch,
                            index + 1,
                            history,
                            epoch_rng,
                            sums,
                            counts,
                            elapsed + time.perf_counter() - started,
                        )
                        self.interrupted = True
                        self._log(
                            {"kind": "interrupted", "epoch": epoch + 1, "step": self._global_step}
                        )
                        return history
            if self.method.alternating_head:
                self._head_epoch(train_loader, epoch, steps_per_epoch, sums, counts)
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": self._global_step,
                "lr": self._current_lr(),
                **self._summarise(sums, counts, reduce=True),
            }
            record["epoch_time"] = elapsed + time.perf_counter() - started
            if test_loader is not None:
                record["test_accuracy"] = self.evaluate(test_loader)
            history.append(record)
            self._log({"kind": "epoch", **record})
            self._report_epoch(history)
            skip = 0
            if (epoch + 1) % self.checkpoint_every == 0 or epoch + 1 == self.epochs:
                self._save(epoch + 1, 0, history, None, {}, {}, 0.0)
        return history

    def _head_epoch(
        self,
        train_loader: Iterable,
        epoch: int,
        steps_per_epoch: int,
        sums: dict[str, Tensor],
        counts: dict[str, int],
    ) -> None:
        """One epoch of ``method.head_step`` over the loader; its metrics go into ``sums``."""
        for index, batch in enumerate(train_loader):
            if index >= steps_per_epoch:
                break
            _, metrics = self._optimisation_step(batch, epoch, first=False, head=True)
            _accumulate(sums, counts, metrics)

    def _optimisation_step(
        self, batch: Any, epoch: int, first: bool, head: bool = False
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """One optimizer step of the method's training step (or of its head step, which keeps
        the current learning rate and does not advance the global step)."""
        batch = _to_device(batch, self.device)
        if first:
            _check_batch_values(batch)
        if not head:
            factor = lr_factor(
                self._global_step, self._total_steps, self._warmup_steps, self.final_lr_ratio
            )
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * factor
        autocast = (
            torch.autocast("cuda", dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            loss, metrics = self._step_module(batch, epoch, head)
        if not isinstance(loss, Tensor) or loss.ndim != 0:
            got = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            name = "head_step" if head else "training_step"
            raise TypeError(
                f"{type(self.method).__name__}.{name} must return a scalar loss, got {got}"
            )
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        if not head:
            self._global_step += 1
        return loss.detach(), metrics

    def evaluate(self, loader: Iterable) -> float:
        """Top-1 accuracy (``evaluate.accuracy``) of ``model(x)`` over ``loader``, all processes'
        shards together, over the real classes (``method.extra_logits`` excluded)."""
        result = accuracy(
            self.model, loader, topk=(1,), per_class=False, extra_logits=self.method.extra_logits
        )
        totals = torch.tensor(
            [result["top1"] * result["count"], result["count"]], device=self.device
        )
        correct, seen = global_sum(totals).tolist()
        return correct / seen

    # ------------------------------------------------------------------ metrics and logging

    def _summarise(
        self, sums: dict[str, Tensor], counts: dict[str, int], reduce: bool
    ) -> dict[str, float]:
        """Means of the accumulated metrics: one host sync (plus one all-reduce when ``reduce``)."""
        if not sums:
            return {}
        keys = sorted(sums)
        stacked = torch.stack([sums[key] for key in keys])
        weights = torch.tensor(
            [counts[key] for key in keys], dtype=stacked.dtype, device=stacked.device
        )
        if reduce:
            stacked = global_sum(stacked)
            weights = global_sum(weights)
        means = dict(zip(keys, (stacked / weights).tolist(), strict=False))
        if not math.isfinite(means["loss"]):
            raise FloatingPointError(
                f"the training loss became {means['loss']} by step {self._global_step}; lower the "
                f"learning rate or check the data and method"
            )
        return means

    def _report_epoch(self, history: list[dict[str, Any]]) -> None:
        """Rank 0: the epoch's summary line, ``metrics.csv`` and TensorBoard scalars."""
        if not self.context.is_main:
            return
        logger.info(epoch_line(history[-1], self.epochs))
        if self.out_dir is not None:
            write_csv(self.out_dir / CSV_FILE, history)
        if self._board is not None:
            self._board.write(history[-1])

    def _current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _log(self, record: dict[str, Any]) -> None:
        if self.out_dir is None or not self.context.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / self.log_file, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------- checkpoints and signals

    def _save(
        self,
        epoch: int,
        step_in_epoch: int,
        history: list[dict[str, Any]],
        epoch_rng: dict[str, Any] | None,
        sums: dict[str, Tensor],
        counts: dict[str, int],
        elapsed: float,
    ) -> None:
        rng = capture_rng_state(self.device)
        rng_all = gather_objects(_to_cpu(rng), self.context)
        epoch_rng_all = gather_objects(_to_cpu(epoch_rng or rng), self.context)
        # each process's partial metric sums of the epoch (all-reduced at its end)
        sums_all = gather_objects(_to_cpu({k: v.detach() for k, v in sums.items()}), self.context)
        counts_all = gather_objects(dict(counts), self.context)
        if self.checkpoint_path is None or not self.context.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "global_step": self._global_step,
            "world_size": self.context.world_size,
            "rng": rng_all,
            "epoch_rng": epoch_rng_all,
            "history": history,
            "sums": sums_all,
            "counts": counts_all,
            "elapsed": elapsed,
            "method": self.method.state_dict(),
        }
        save_checkpoint(state, self.checkpoint_path)

    def _restore(self) -> ResumePosition:
        """Load the checkpoint named by ``resume``; or seed a fresh run. Returns the position."""
        path: Path | None = None
        if self.resume == "auto":
            candidate = self.checkpoint_path
            path = candidate if candidate is not None and candidate.is_file() else None
        elif self.resume is not None:
            path = Path(self.resume)
        if path is None:
            _seed_everything(self.seed + self.context.rank)
            return ResumePosition()
        state = load_checkpoint(path, map_location="cpu")
        load_model_state(self.model, state["model"], path)
        load_model_state(self.optimizer, state["optimizer"], path)
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        if state["global_step"] > self._total_steps or state["epoch"] > self.epochs:
            raise ValueError(
                f"checkpoint {path} is at epoch {state['epoch']} (step {state['global_step']}), "
                f"beyond this run's {self.epochs} epochs"
            )
        rank = self.context.rank
        if len(state["rng"]) != self.context.world_size:
            raise ValueError(
                f"checkpoint {path} was written by {len(state['rng'])} process"
                f"{'es' if len(state['rng']) != 1 else ''}; resume it with "
                f"the same number (got {self.context.world_size}) to reproduce the run"
            )
        restore_rng_state(state["rng"][rank], self.device)
        self.method.load_state_dict(state["method"])
        sums, counts = state["sums"], state["counts"]
        return ResumePosition(
            epoch=state["epoch"],
            step_in_epoch=state["step_in_epoch"],
            global_step=state["global_step"],
            history=list(state["history"]),
            rng=state["rng"][rank],
            epoch_rng=state["epoch_rng"][rank],
            sums={key: value.to(self.device) for key, value in sums[rank].items()},
            counts=dict(counts[rank]),
            elapsed=float(state["elapsed"]),
        )

    def _should_stop(self, done_in_epoch: int, steps_per_epoch: int) -> bool:
        """Whether to stop now. Single process: the flag, every step. DDP: an all-reduce of the
        flags every ``log_every`` steps, so all processes stop at the same step."""
        if not self.context.distributed:
            return self._stop_requested
        if done_in_epoch % self.log_every and done_in_epoch != steps_per_epoch:
            return False
        flag = torch.tensor([float(self._stop_requested)], device=self.device)
        return bool(global_sum(flag).item() > 0)

    def _install_signal_handlers(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        self.stop_signal = signum


# ---------------------------------------------------------------------------------- helpers


def _amp_dtype(amp: str | None, device: torch.device) -> torch.dtype | None:
    if amp is None or device.type != "cuda":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _set_epoch(loader: Any, epoch: int) -> None:
    """Tell the loader (or its sampler) the epoch, so its order is a function of (seed, epoch)."""
    for target in (
        loader,
        getattr(loader, "sampler", None),
        getattr(loader, "batch_sampler", None),
    ):
        if target is not None and callable(getattr(target, "set_epoch", None)):
            target.set_epoch(epoch)
            return


def _skipped(batches: Iterator, count: int) -> Iterator:
    for _ in range(count):
        if next(batches, None) is None:
            raise ValueError("the loader yields fewer batches than the checkpoint consumed")
    return batches


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(item, device) for item in batch)
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    return batch


def _to_cpu(state: Any) -> Any:
    if isinstance(state, dict):
        return {key: _to_cpu(value) for key, value in state.items()}
    return state.cpu() if isinstance(state, Tensor) else state


def _check_batch_values(batch: Any) -> None:
    """Full checks of the first batch of a run (a few host syncs, once)."""
    x, y, *_ = unpack_batch(batch)
    check_images(x, "batch images")
    check_labels(y, x.shape[0], name="batch labels")
    low, high = float(x.amin()), float(x.amax())
    if low < 0 or high > 1:
        raise ValueError(
            f"batch images must lie in [0, 1] (models normalise inside), got [{low}, {high}]"
        )


def _accumulate(sums: dict[str, Tensor], counts: dict[str, int], values: dict[str, Tensor]) -> None:
    for key, value in values.items():
        value = value.detach().float()
        sums[key] = sums[key] + value if key in sums else value
        counts[key] = counts.get(key, 0) + 1
