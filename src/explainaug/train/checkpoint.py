"""Atomic checkpoints loadable with ``torch.load(weights_only=True)``, and RNG state capture.

A checkpoint holds only tensors and primitive containers (dicts, lists, numbers, strings,
None), so loading it never runs pickled code.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

REQUIRED_KEYS = ("model", "optimizer", "epoch", "step_in_epoch", "global_step", "rng")


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same directory is written,
    flushed and fsynced, then renamed over ``path``. A failure leaves no partial file behind.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> save_checkpoint({"w": torch.ones(2)}, folder / "ckpt.pt").name
        'ckpt.pt'
        >>> sorted(p.name for p in folder.iterdir())
        ['ckpt.pt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return path


def load_checkpoint(
    path: str | os.PathLike,
    *,
    map_location: str | torch.device = "cpu",
    required: tuple[str, ...] = REQUIRED_KEYS,
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check it holds ``required`` keys.

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: the file is truncated, corrupt, not a checkpoint, or lacks keys.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "ckpt.pt"
        >>> _ = save_checkpoint({"w": torch.ones(2)}, path)
        >>> load_checkpoint(path, required=("w",))["w"].tolist()
        [1.0, 1.0]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:  # torch's message suggests an unsafe retry: not repeated here
        raise ValueError(
            f"cannot load checkpoint {path}: it holds objects other than tensors and plain "
            "containers, which a safe (weights-only) load refuses"
        ) from None
    except Exception as error:  # any other failure to parse the file: corrupt or truncated
        raise ValueError(
            f"cannot load checkpoint {path}: the file is corrupt, truncated or not a PyTorch "
            f"checkpoint ({_summary(error)})"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} must hold a dict, got {type(state).__name__}")
    missing = [key for key in required if key not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks the keys {missing}; found {sorted(state)}")
    return state


def load_model_state(
    module: torch.nn.Module | torch.optim.Optimizer, state: object, path: str | os.PathLike
) -> None:
    """``module.load_state_dict(state)``, with a one-line ``ValueError`` naming the checkpoint
    ``path`` when the state does not fit (other architecture, width or class count).

    Example:
        >>> load_model_state(torch.nn.Linear(2, 3), torch.nn.Linear(2, 4).state_dict(), "c.pt")
        Traceback (most recent call last):
        ...
        ValueError: checkpoint c.pt does not fit this Linear: ...size mismatch for weight...
    """
    try:
        module.load_state_dict(state)  # type: ignore[arg-type]
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(
            f"checkpoint {path} does not fit this {type(module).__name__}: {_summary(error)}"
        ) from None


def _summary(error: BaseException, limit: int = 300) -> str:
    """``error`` as one line of at most ``limit`` characters."""
    text = f"{type(error).__name__}: {' '.join(str(error).split())}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def capture_rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """The state of torch's CPU (and ``device``'s CUDA) generator, numpy's and Python's, as
    tensors and numbers (``weights_only``-loadable).

    Example:
        >>> state = capture_rng_state()
        >>> a = torch.rand(2); restore_rng_state(state); torch.equal(a, torch.rand(2))
        True
    """
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {
            "version": py_version,
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss": py_gauss,
        },
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore generators saved by ``capture_rng_state``.

    Example:
        >>> restore_rng_state(capture_rng_state())
    """
    torch.set_rng_state(state["torch"].cpu())
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["gauss"],
        )
    )
    python_state = state["python"]
    random.setstate(
        (python_state["version"], tuple(python_state["internal"].tolist()), python_state["gauss"])
    )
    if "cuda" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
