"""Stopping long loops cleanly on Ctrl-C (SIGINT) and SIGTERM (chapters 7, 8 and 12).

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when the signal arrives; inside a
finaliser or a garbage-collection callback it is printed as "Exception ignored" and lost, so the loop runs on.
``StopRequest`` turns the first signal into a flag that the loop checks at points where stopping is safe.
"""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """The first SIGINT or SIGTERM sets ``signal``; the loop checks it and stops where it is safe (a training
    step finished, a chunk written); a second one raises ``KeyboardInterrupt`` at once. Signals can only be
    caught on the main thread; elsewhere this does nothing."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt(f"signal {signum}")
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


__all__ = ["StopRequest"]
