"""Signal handlers set for the length of a block, and the previous ones put back after it."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any]


@contextlib.contextmanager
def handling(signals: Iterable[int], handler: Handler) -> Iterator[bool]:
    """Run the block with ``handler`` for ``signals``; the previous handlers come back after
    it, however it ends. Yields False, and sets nothing, outside the main thread (Python lets
    only the main thread set handlers, and delivers signals only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield True
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
