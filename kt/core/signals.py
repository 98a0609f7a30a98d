"""Stopping promptly on SIGTERM and SIGINT where Lightning does not.

Lightning's signal connector only records a SIGTERM and acts on it between training batches; ``predict``
never looks, so ``timeout 8 kt predict ...`` would run to the end and still replace the output.
:class:`StopOnSignals` makes both signals raise :class:`Stopped` (a ``KeyboardInterrupt``, which Lightning
turns into a shutdown with exit code 1) in the main thread, and puts the previous handlers back afterwards.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by a signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class StopOnSignals:
    """``install()`` makes SIGTERM/SIGINT raise :class:`Stopped`; ``restore()`` puts back what was there.

    Both are no-ops outside the main thread (Python only delivers signals there) and ``restore`` may be
    called more than once.
    """

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @staticmethod
    def _raise(signum: int, frame: FrameType | None) -> None:
        raise Stopped(signum)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread() or self._previous:
            return
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._raise)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
