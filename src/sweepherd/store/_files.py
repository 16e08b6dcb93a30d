"""File-system helpers of the store: atomic writes, directory fsync, and OS errors in words.

Every ``OSError`` the store meets is turned into a :class:`~sweepherd.errors.StoreError` by
:func:`store_error`, whose message names the path, says what happened in plain words (the disk
is full, the filesystem is read-only...) and what to do about it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from sweepherd.errors import StoreError

_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS,)
_DENIED = (errno.EACCES, errno.EPERM)


def is_disk_full(err: OSError) -> bool:
    """True when ``err`` means there is no space (or quota) left."""
    return err.errno in _FULL


def store_error(action: str, path: Path | str, err: OSError) -> StoreError:
    """A one-line :class:`StoreError` for ``err``, met while ``action`` (a verb) ``path``."""
    if err.errno in _FULL:
        return StoreError(
            f"The disk holding {path} is full (no space left while {action} it); nothing was "
            "half-written.",
            hint="Free some space there (or raise the quota) and retry; the sweep is intact.",
        )
    if err.errno in _READ_ONLY:
        return StoreError(
            f"Cannot write {path}: the filesystem is read-only.",
            hint="Put the sweeps on a writable filesystem with --dir (or SWEEPHERD_DIR).",
        )
    if err.errno in _DENIED:
        return StoreError(
            f"Permission denied while {action} {path}.",
            hint="Check the owner and mode of the sweep directory, or use another --dir.",
        )
    reason = err.strerror or str(err)
    return StoreError(f"Error while {action} {path}: {reason} (errno {err.errno}).")


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a new or renamed file) durable; best effort."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some network filesystems refuse fsync on directories
            os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a part.

    The bytes go to a temporary file beside ``path`` (same directory, so the rename is atomic
    on POSIX and NFS), which is fsynced when ``durable`` and renamed over ``path``. On failure
    the temporary file is removed and a :class:`StoreError` raised.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(3).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise store_error("writing", path, err) from err
    if durable:
        fsync_dir(path.parent)
