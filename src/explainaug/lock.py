"""One owner per run folder: an exclusive OS lock on ``FOLDER/run.lock`` (``filelock``).

While a process owns a folder, its lock file records the owner's process id and command, so a
second run into the same folder is refused with one line naming it. The operating system
releases the lock of a process that dies (``kill -9`` included): the next run takes it over and
says whose lock it took. A released lock file is left empty (deleting it would let two
processes lock two different files of the same name). Importable without torch.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with FolderLock(folder):
    ...     holder(folder)["pid"] == os.getpid()
    True
    >>> holder(folder) is None
    True
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import filelock

LOCK_FILE = "run.lock"
logger = logging.getLogger("explainaug")
_HELD: dict[str, int] = {}  # folders this process owns (resolved) -> nested holders


class FolderBusyError(ValueError):
    """Another process owns the folder; the message names it (one line)."""


def _record(path: Path) -> dict[str, Any] | None:
    """The owner a lock file records (None: empty or unreadable)."""
    try:
        record = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _busy(folder: Path, record: dict[str, Any] | None) -> FolderBusyError:
    owner = (
        f"process {record.get('pid')} ({record.get('command')})" if record else "another process"
    )
    return FolderBusyError(
        f"--out {folder} is in use by {owner}; wait for it to end, stop it, or choose another --out"
    )


class FolderLock:
    """Own ``folder`` (created if missing) until ``release``; a context manager.

    Raises:
        FolderBusyError: another process owns the folder (on ``acquire``).
        OSError: the folder cannot be created or written.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._lock = filelock.FileLock(self.path, timeout=0)
        self._nested: str | None = None

    def acquire(self) -> FolderLock:
        """Take the folder, or raise ``FolderBusyError`` naming its owner. Within a process
        that already owns it (``explainaug.experiment.run`` around its ``Trainer``), the
        folder is shared: the outermost holder's release releases it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key = str(self.folder.resolve())
        if key in _HELD:
            _HELD[key] += 1
            self._nested = key
            return self
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise _busy(self.folder, _record(self.path)) from None
        left = _record(self.path)
        if left is not None:  # its owner ended without releasing it (killed)
            logger.warning(
                "took over %s: its lock was left by process %s (%s), which is no longer running",
                self.folder,
                left.get("pid"),
                left.get("command"),
            )
        command = shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
        self.path.write_text(json.dumps({"pid": os.getpid(), "command": command}))
        _HELD[str(self.folder.resolve())] = 1
        return self

    def release(self) -> None:
        """Give the folder up (the lock file stays, empty)."""
        if self._nested is not None:
            if self._nested in _HELD:
                _HELD[self._nested] -= 1
            self._nested = None
        elif self._lock.is_locked:
            self.path.write_text("")
            self._lock.release()
            _HELD.pop(str(self.folder.resolve()), None)

    @property
    def held(self) -> bool:
        """Whether this lock holds the folder now."""
        return self._nested is not None or self._lock.is_locked

    def __enter__(self) -> FolderLock:
        return self if self.held else self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def holder(folder: str | Path) -> dict[str, Any] | None:
    """Who owns ``folder`` now: ``{"pid": ..., "command": ...}``, or None when nobody does.
    Creates nothing (a folder without a lock file is free).

    Example:
        >>> holder("no/such/folder") is None
        True
    """
    path = Path(folder) / LOCK_FILE
    if not path.is_file():
        return None
    probe = filelock.FileLock(path, timeout=0)
    try:
        probe.acquire()
    except filelock.Timeout:
        return _record(path) or {"pid": None, "command": None}
    except OSError:  # not ours to write: whoever acquires it will say why
        return None
    probe.release()
    return None


def check_free(folder: str | Path) -> None:
    """Raise ``FolderBusyError`` naming the process that owns ``folder``, if any.

    Example:
        >>> check_free("no/such/folder")
    """
    record = holder(folder)
    if record is not None:
        raise _busy(Path(folder), record if record.get("pid") else None)
