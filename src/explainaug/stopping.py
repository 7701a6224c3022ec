"""Stopping a command on SIGTERM or SIGINT (Ctrl-C) with the conventional exit code.

``stop_on_signals`` turns either signal into a :class:`Stopped` exception, raised where the
program is; a ``Trainer`` replaces the handlers while it trains (it checkpoints at the next
step and returns, see ``explainaug.train.Trainer``), and the caller raises ``Stopped`` itself
after that. Exit codes: 128 + the signal's number (143 for SIGTERM, 130 for SIGINT).
Importable without torch.

Example:
    >>> with stop_on_signals():
    ...     try:
    ...         signal.raise_signal(signal.SIGTERM)
    ...     except Stopped as stop:
    ...         stop.exit_code
    143
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """The command was asked to stop by signal ``signum``. A ``BaseException``, as
    ``KeyboardInterrupt``, so that no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 143 for SIGTERM, 130 for SIGINT."""
        return 128 + self.signum


def _raise(signum: int, _frame: FrameType | None) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise :class:`Stopped` (main thread only; elsewhere
    the handlers are left as they are)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, _raise) for signum in SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
