"""Waiting for the journal to change or the lock to be released, without spinning.

Processes waiting on the journal lock could just sleep and retry, but hundreds of them waking
every few milliseconds steal the CPU from the one process holding the lock. On Linux a waiter
instead sleeps in the kernel on inotify: it is woken the moment the journal is appended to or
the lock file is removed, and otherwise after its timeout (so changes made by other hosts of a
network filesystem, which inotify does not see, are still noticed by polling).

Where inotify is missing (not Linux) or exhausted (``fs.inotify.max_user_instances``, 128 by
default, counts every waiting process of a user), :class:`ChangeWaiter` falls back to a plain
sleep: slower under contention, never wrong.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import select
import sys
import time
from pathlib import Path

_IN_MODIFY = 0x00000002
_IN_DELETE = 0x00000200
_IN_MOVED_FROM = 0x00000040
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


def _load_libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _load_libc()


class ChangeWaiter:
    """Sleeps until ``journal`` is modified or a file of ``directory`` is removed, or a timeout.

    Call :meth:`close` (or use it as a context manager) to free the inotify instance.
    """

    def __init__(self, directory: Path, journal: Path) -> None:
        self._fd = -1
        if _LIBC is None:
            return
        fd = _LIBC.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return  # no instance left: fall back to sleeping
        ok = _LIBC.inotify_add_watch(fd, os.fsencode(journal), _IN_MODIFY) >= 0
        ok = (
            ok
            and _LIBC.inotify_add_watch(fd, os.fsencode(directory), _IN_DELETE | _IN_MOVED_FROM)
            >= 0
        )
        if not ok:
            os.close(fd)
            return
        self._fd = fd

    @property
    def uses_inotify(self) -> bool:
        """True when waits end as soon as something changes (not only by timeout)."""
        return self._fd >= 0

    def wait(self, timeout_s: float) -> None:
        """Return when something changed (since the last wait) or after ``timeout_s``."""
        if self._fd < 0:
            time.sleep(max(timeout_s, 0.0))
            return
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select([self._fd], [], [], max(timeout_s, 0.0))
            if ready:
                self._drain()

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._fd, 65536):
                pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ChangeWaiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
