"""The journal file: append-only JSON lines, appended under the lock and read incrementally.

Writing (:meth:`Journal.append`, called only while holding the journal lock): all the lines of a
transaction go out in one ``write`` and one ``fdatasync``. If the file does not end with a newline
(a writer crashed mid-line), a newline is written first so the torn fragment stays a line of its
own and never merges with the new events. If the write or the fsync fails (the disk is full, an
I/O error), the file is truncated back to its previous size and a
:class:`~sweepherd.errors.StoreError` is raised: nothing half-written stays, and the caller may
retry. If the truncation fails too, :class:`~sweepherd.errors.JournalUndoError` says that the
append's lines may stay.

Reading (:class:`JournalReader`, no lock needed): each call reads only the bytes appended since
the previous one and returns the complete lines' events; a last line without its newline (being
written now, or torn by a crash) is left for later. Lines that are not a JSON object with an
``"e"`` field are skipped and counted, never fatal. The reader also re-reads the last line it
consumed: if those bytes changed (the file was truncated after a failed append that a reader had
already seen part of, or replaced), it starts again from the beginning and says so, so the
caller can rebuild its state.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweepherd.errors import JournalUndoError
from sweepherd.store._files import fsync_dir, store_error

#: How many bytes of the last consumed line the reader keeps to detect a rewritten journal.
_CHECK_BYTES = 4096


def encode_event(event: dict[str, Any]) -> bytes:
    """One compact JSON line (with its newline) for ``event``."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class Journal:
    """Writes to a sweep's ``journal.jsonl``. Only call :meth:`append` while holding the lock."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def create(self, first: bytes) -> None:
        """Create the journal with its first line(s); fails if it exists. Fsyncs file and dir."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as err:
            raise store_error("creating", self.path, err) from err
        try:
            self._write_all(fd, first, previous_size=0)
        finally:
            os.close(fd)
        fsync_dir(self.path.parent)

    def append(self, data: bytes) -> int:
        """Append ``data`` (complete lines) in one write + fsync; return the new size.

        Raises :class:`StoreError` after truncating the file back if anything fails.
        """
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        except OSError as err:
            raise store_error("opening", self.path, err) from err
        try:
            try:
                size = os.fstat(fd).st_size
                if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data  # terminate a torn last line first
            except OSError as err:
                raise store_error("reading the end of", self.path, err) from err
            return self._write_all(fd, data, previous_size=size)
        finally:
            os.close(fd)

    def _write_all(self, fd: int, data: bytes, *, previous_size: int) -> int:
        try:
            n = os.write(fd, data)
            if n != len(data):
                raise OSError(errno.ENOSPC, "short write: no space left on device")
            _datasync(fd)
        except OSError as err:
            try:
                os.ftruncate(fd, previous_size)
                os.fsync(fd)
            except OSError as undo:
                raise JournalUndoError(
                    f"Appending to {self.path} failed ({err.strerror or err}), and undoing it "
                    f"failed too ({undo.strerror or undo}): the journal may keep that append's "
                    "lines, which readers then take as written.",
                    hint="Check the filesystem (space, quota, errors in dmesg); the sweep's "
                    "runs stay as the journal says.",
                ) from err
            raise store_error("appending to", self.path, err) from err
        return previous_size + len(data)


def _datasync(fd: int) -> None:
    """Make appended bytes durable: fdatasync flushes the data and the size needed to read them
    (not the mtime), and costs half an fsync on ext4 when other files changed meanwhile."""
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # macOS
        os.fsync(fd)


@dataclass
class ReadResult:
    """What one :meth:`JournalReader.read` found."""

    events: list[dict[str, Any]] = field(default_factory=list)
    n_skipped: int = 0  # complete lines that were not valid events
    reset: bool = False  # the journal changed under the reader: ``events`` start from line 1


class JournalReader:
    """Reads a journal incrementally: each :meth:`read` returns only the new complete lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # bytes consumed: always just after a newline
        self._check = b""  # the last bytes consumed (the end of the last line)

    def read(self) -> ReadResult:
        """The events of the complete lines appended since the last call."""
        chunk, reset = self.read_raw()
        events, n_skipped = parse_lines(chunk)
        return ReadResult(events, n_skipped, reset)

    def read_raw(self) -> tuple[bytes, bool]:
        """The complete lines appended since the last call, unparsed, and whether the journal
        changed beneath the reader (then the bytes start from the beginning)."""
        start = self.offset - len(self._check)
        data = self._read_from(start)
        reset = False
        if self._check and data[: len(self._check)] != self._check:
            self.offset, self._check = 0, b""
            data = self._read_from(0)
            reset = True
        else:
            data = data[len(self._check) :]
        end = data.rfind(b"\n")
        if end < 0:
            return b"", reset
        chunk = data[: end + 1]
        self.offset += end + 1
        self._check = (self._check + chunk)[-_CHECK_BYTES:]
        return chunk, reset

    def _read_from(self, start: int) -> bytes:
        try:
            with self.path.open("rb", buffering=0) as f:
                if start:
                    f.seek(start)
                return f.read()
        except OSError as err:
            raise store_error("reading", self.path, err) from err


def parse_lines(chunk: bytes) -> tuple[list[dict[str, Any]], int]:
    """The events in ``chunk`` (complete lines) and how many lines were not valid events."""
    lines = [line for line in chunk.split(b"\n") if line.strip()]
    if not lines:
        return [], 0
    parsed: list[Any] = []
    with contextlib.suppress(ValueError):  # one C-level parse: the common case, no garbage
        parsed = json.loads(b"[" + b",".join(lines) + b"]")
    if len(parsed) != len(lines):  # some line is not one JSON value: parse them one by one
        parsed = [_parse(line) for line in lines]
    events = [e for e in parsed if isinstance(e, dict) and isinstance(e.get("e"), str)]
    return events, len(lines) - len(events)


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line)
    except ValueError:  # also UnicodeDecodeError
        return None
