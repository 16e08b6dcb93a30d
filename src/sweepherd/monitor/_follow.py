"""Following files on a shared filesystem without loading it: stat first, read only what is new.

A live view polls many small files (each running run's ``metrics.jsonl``, its wandb log, the
journal). On NFS or Lustre every ``open`` and every read is a round trip to a server that the
whole cluster shares, so the followers here ``stat`` a file and open it only when its size
changed, and then read only the bytes appended since the last read. :class:`IoStats` counts what
they did, so a caller (and the tests) can see that an idle frame opens nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class IoStats:
    """What followers did to the filesystem: stat calls, files opened, bytes read."""

    n_stat: int = 0
    n_open: int = 0
    n_bytes: int = 0

    def copy(self) -> IoStats:
        return IoStats(self.n_stat, self.n_open, self.n_bytes)


class FileFollower:
    """Returns the bytes appended to one file since the last call; the file need not exist yet.

    Each :meth:`read_new` is one ``stat``; the file is opened only when its size differs from
    the size seen last time. A file that shrank or was replaced (another inode) is read again
    from the start, and :attr:`restarted` says so.
    """

    def __init__(self, path: Path, stats: IoStats | None = None) -> None:
        self.path = path
        self.stats = stats if stats is not None else IoStats()
        self.offset = 0  # bytes consumed
        self.restarted = False  # the last read started over (truncated or replaced file)
        self._inode: int | None = None

    def read_new(self) -> bytes:
        """The bytes appended since the last call (``b""`` when nothing changed or no file)."""
        self.restarted = False
        self.stats.n_stat += 1
        try:
            st = self.path.stat()
        except OSError:
            return b""
        if self._inode is not None and (st.st_ino != self._inode or st.st_size < self.offset):
            self.offset, self.restarted = 0, True
        self._inode = st.st_ino
        if st.st_size == self.offset:
            return b""
        try:
            with self.path.open("rb", buffering=0) as f:
                self.stats.n_open += 1
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return b""
        self.offset += len(data)
        self.stats.n_bytes += len(data)
        return data


class ChangeWatcher:
    """Tells whether a file changed (identity, size or mtime) since the last call: one ``stat``.

    The first call says True (nothing was seen yet); a missing file counts as changed, so the
    caller reads it and meets the real error.
    """

    def __init__(self, path: Path, stats: IoStats | None = None) -> None:
        self.path = path
        self.stats = stats if stats is not None else IoStats()
        self._key: tuple[int, int, int] | None = None

    def changed(self) -> bool:
        self.stats.n_stat += 1
        try:
            st = self.path.stat()
        except OSError:
            self._key = None
            return True
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key == self._key:
            return False
        self._key = key
        return True


class JsonLinesFollower:
    """Follows a JSON-lines file (``metrics.jsonl``): each call returns the new complete rows.

    A last line without its newline (being written now) is kept in memory and completed by
    the next read, so no byte is read twice. Lines that are not JSON objects are skipped and
    counted in :attr:`n_bad_lines`.
    """

    def __init__(self, path: Path, stats: IoStats | None = None) -> None:
        self.file = FileFollower(path, stats)
        self._partial = b""
        self.n_bad_lines = 0

    def read_new(self) -> list[dict[str, Any]]:
        """The rows of the complete lines appended since the last call."""
        rows: list[dict[str, Any]] = []
        for line in self.read_new_lines():
            row = self.parse(line)
            if row is not None:
                rows.append(row)
        return rows

    def read_new_lines(self) -> list[bytes]:
        """The complete, non-blank lines appended since the last call, unparsed."""
        data = self.file.read_new()
        if self.file.restarted:
            self._partial = b""
        if not data:
            return []
        data = self._partial + data
        end = data.rfind(b"\n")
        if end < 0:
            self._partial = data
            return []
        self._partial = data[end + 1 :]
        return [line for line in data[:end].split(b"\n") if line.strip()]

    def parse(self, line: bytes) -> dict[str, Any] | None:
        """One line's row; None (counted in :attr:`n_bad_lines`) if it is not a JSON object."""
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            return row
        self.n_bad_lines += 1
        return None


def tail_lines(
    path: Path, n_lines: int, stats: IoStats | None = None, n_bytes: int = 8192
) -> list[str]:
    """The last ``n_lines`` non-empty lines of a text file, reading at most its last ``n_bytes``.

    Only the lines after the last ``--- sweepherd: attempt ... ---`` banner count: they belong
    to the latest attempt. A missing file has no lines.
    """
    stats = stats if stats is not None else IoStats()
    stats.n_stat += 1
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            stats.n_open += 1
            f.seek(max(0, size - n_bytes))
            data = f.read(n_bytes)
    except OSError:
        return []
    stats.n_bytes += len(data)
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if size > n_bytes and lines:
        lines = lines[1:]  # the first line is probably cut
    for i in range(len(lines) - 1, -1, -1):
        if is_attempt_banner(lines[i]):
            lines = lines[i + 1 :]
            break
    return [ln.rstrip() for ln in lines if ln.strip()][-n_lines:] if n_lines > 0 else []


def is_attempt_banner(line: str) -> bool:
    """True for the line the agent writes before each attempt after the first."""
    return line.startswith("--- sweepherd: attempt ") and line.rstrip().endswith("---")
