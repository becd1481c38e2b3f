"""Ctrl-C and SIGTERM during training: finish the step, write a checkpoint, then stop."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any

__all__ = ["StopSignals"]


class StopSignals:
    """Turns the first SIGINT (Ctrl-C) or SIGTERM into a request to stop after the current
    step with a checkpoint; a second Ctrl-C raises ``KeyboardInterrupt`` at once. Only the
    main thread can install signal handlers: elsewhere this does nothing."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        name = signal.Signals(signum).name
        print(
            f"\n{name}: stopping after this step and writing a checkpoint "
            "(Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
