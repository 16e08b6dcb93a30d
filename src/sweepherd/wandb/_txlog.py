"""Reading a wandb run's transaction log (``run-<id>.wandb``) while the run is still writing it.

Offline wandb (0.31) keeps everything a run logs in one append-only file,
``<WANDB_DIR>/wandb/offline-run-<YYYYmmdd_HHMMSS>-<id>/run-<id>.wandb``; it never writes
``wandb-summary.json`` offline. The file is in LevelDB's log format:

- a 7-byte file header: ``:W&B``, the magic ``0xBEE1`` (little-endian u16), a version byte;
- then 32 KiB blocks (the header counts as the start of block 0). A block holds chunks; a chunk
  is a 7-byte header (``crc32`` of type byte + data, ``u16`` length, ``u8`` type) then its data.
  Fewer than 7 bytes left in a block are padding. Type FULL (1) holds a whole record; a bigger
  record is split into FIRST (2), MIDDLE (3)... and LAST (4) chunks across blocks;
- each record is a ``wandb.proto.wandb_internal_pb2.Record`` protobuf.

wandb 0.31 flushes the file every ``WANDB__TRANSACTION_LOG_FLUSH_INTERVAL`` seconds (15 by
default); older SDKs only when a 32 KiB block fills or the run ends. A run killed by SIGKILL
leaves what was flushed and no exit record.

:class:`TransactionLogReader` reads one file incrementally: it keeps the byte offset of the end of
the last complete chunk and the pieces of a record split across chunks, and stops at a partly
written tail, to resume there on the next call. :class:`RunLogReader` reads every attempt of a
run (a run resumed under the same id gets a new ``offline-run-*`` folder) in start order.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from sweepherd._extras import install_extra_hint
from sweepherd.errors import WandbError

BLOCK_SIZE = 32 * 1024
FILE_HEADER_SIZE = 7
CHUNK_HEADER_SIZE = 7
_MAGIC = b":W&B"
_MAGIC_NUMBER = 0xBEE1
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_TYPE_CRC = {t: zlib.crc32(bytes([t])) for t in (_FULL, _FIRST, _MIDDLE, _LAST)}
#: The folder wandb gives a run's logs: ``[offline-]run-<stamp>-<id>`` (groups: stamp, id).
RUN_FOLDER = re.compile(r"^(?:offline-)?run-(\d{8}_\d{6})-(.+)$")

INSTALL_HINT = install_extra_hint("wandb") + " (in the agents' environment)."


# ----------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class RunStarted:
    """The run record: who the run is, and the config it started with."""

    run_id: str
    project: str
    entity: str
    sweep_id: str
    group: str
    config: Mapping[str, Any]  # nested, as wandb.config; includes wandb's own "_wandb" key
    resumed: bool
    start_time: float | None  # unix time
    host: str = ""  # the machine the attempt ran on (socket.gethostname() there)


@dataclass(frozen=True)
class HistoryRow:
    """One ``wandb.log`` step. Names are ``key`` or the nested keys joined with ``/``."""

    values: Mapping[str, Any]
    step: int | None


@dataclass(frozen=True)
class SummaryUpdate:
    """Summary values set (by wandb after each logged step, or by the script) or removed."""

    values: Mapping[str, Any]
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigUpdate:
    """Config values changed during the run (nested, as wandb.config) or removed."""

    values: Mapping[str, Any]
    removed: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunExited:
    """The run finished (``wandb.finish`` or the end of the script); absent when killed."""

    exit_code: int
    runtime_s: float  # whole seconds, as wandb records it


@dataclass(frozen=True)
class Preempting:
    """The script called ``run.mark_preempting()``."""


Event = RunStarted | HistoryRow | SummaryUpdate | ConfigUpdate | RunExited | Preempting


# ------------------------------------------------------------------------------ one file


@dataclass
class TransactionLogReader:
    """Incremental reader of one transaction log file; the file need not exist yet.

    ``read_new()`` returns the events of the records completed since the last call. A tail that
    is still being written (a partial chunk header, a chunk shorter than its length, zeros not
    yet filled in) is left for the next call. A chunk whose checksum is wrong while later blocks
    exist is corruption: the rest of its block is skipped, as LevelDB's reader does, and
    ``n_corrupt`` counts it.
    """

    path: Path
    offset: int = 0  # file offset just past the last complete chunk consumed
    end: int | None = None  # read no further into the file than this offset (None: all of it)
    n_records: int = 0
    n_corrupt: int = 0
    _pending: bytearray | None = field(default=None, repr=False)

    def read_new(self) -> list[Event]:
        """Events of the records completed since the last call (``[]`` if none or no file)."""
        events: list[Event] = []
        for data in self.read_new_records():
            event = decode_record(data)
            if event is not None:
                events.append(event)
        return events

    def read_new_records(self, max_bytes: int = -1) -> list[bytes]:
        """Serialized ``Record`` protobufs completed since the last call (within the next
        ``max_bytes`` bytes of the file, if given)."""
        if self.end is not None:
            left = self.end - self.offset
            if left <= 0:
                return []
            max_bytes = left if max_bytes < 0 else min(max_bytes, left)
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                buf = f.read(max_bytes)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise WandbError(
                f"Could not read the wandb transaction log {self.path}: {exc.strerror or exc}."
            ) from exc
        if self.offset == 0:
            if len(buf) < FILE_HEADER_SIZE:
                return []
            magic, number, _version = struct.unpack("<4sHB", buf[:FILE_HEADER_SIZE])
            if magic != _MAGIC or number != _MAGIC_NUMBER:
                raise WandbError(
                    f"{self.path} is not a wandb transaction log (its header is {buf[:7]!r}).",
                    hint="Point sweepherd at the run-<id>.wandb file of an offline-run-* folder.",
                )
            self.offset = FILE_HEADER_SIZE
            buf = buf[FILE_HEADER_SIZE:]
        return list(self._chunks(buf, base=self.offset))

    def _chunks(self, buf: bytes, base: int) -> Iterator[bytes]:
        """Complete records in ``buf``, which starts at file offset ``base``."""
        end = base + len(buf)
        pos = base
        while True:
            left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE
            if left_in_block < CHUNK_HEADER_SIZE:  # block trailer: padding
                if pos + left_in_block > end:
                    return
                pos += left_in_block
                self.offset = pos
                continue
            if pos + CHUNK_HEADER_SIZE > end:
                return
            i = pos - base
            crc, length, kind = struct.unpack("<IHB", buf[i : i + CHUNK_HEADER_SIZE])
            next_block = pos + left_in_block
            if kind == 0 and length == 0 and crc == 0:
                # Zeros: not written yet, or the writer padded the block; skip only if data
                # follows in a later block.
                if end > next_block:
                    pos = self.offset = next_block
                    continue
                return
            data_end = pos + CHUNK_HEADER_SIZE + length
            if data_end > end:
                return
            data = buf[i + CHUNK_HEADER_SIZE : i + CHUNK_HEADER_SIZE + length]
            if kind not in _TYPE_CRC or zlib.crc32(data, _TYPE_CRC[kind]) != crc:
                if end > next_block:  # damaged, and the writer has moved on: skip the block
                    self.n_corrupt += 1
                    self._pending = None
                    pos = self.offset = next_block
                    continue
                return  # maybe not fully visible yet (network filesystems): try again later
            pos = self.offset = data_end
            if kind == _FULL:
                self._pending = None
                self.n_records += 1
                yield data
            elif kind == _FIRST:
                self._pending = bytearray(data)
            elif self._pending is None:  # MIDDLE/LAST without FIRST: skipped after corruption
                continue
            elif kind == _MIDDLE:
                self._pending += data
            else:
                record = bytes(self._pending + data)
                self._pending = None
                self.n_records += 1
                yield record


# ------------------------------------------------------------------------------ records


@cache
def _record_class() -> Any:
    try:
        from wandb.proto import wandb_internal_pb2
    except ImportError as exc:
        raise WandbError(
            "Reading wandb run logs needs the wandb package, which is not installed.",
            hint=INSTALL_HINT,
        ) from exc
    module: Any = wandb_internal_pb2  # generated code: typed loosely on purpose
    return module.Record


def decode_record(data: bytes) -> Event | None:
    """The event of one serialized ``Record``, or ``None`` for kinds sweepherd does not use."""
    record = _record_class()()
    try:
        record.ParseFromString(data)
    except Exception:  # protobuf's DecodeError; a damaged record is skipped, not fatal
        return None
    kind = record.WhichOneof("record_type")
    if kind == "history":
        h = record.history
        step = h.step.num if h.HasField("step") else None
        return HistoryRow(values={_name(i): _item_value(i) for i in h.item}, step=step)
    if kind == "summary":
        s = record.summary
        return SummaryUpdate(
            values={_name(i): _json(i.value_json) for i in s.update},
            removed=tuple(_name(i) for i in s.remove),
        )
    if kind == "config":
        c = record.config
        return ConfigUpdate(values=_nested(c.update), removed=tuple(_name(i) for i in c.remove))
    if kind == "exit":
        e = record.exit
        return RunExited(exit_code=e.exit_code, runtime_s=float(e.runtime))
    if kind == "run":
        r = record.run
        start = None
        if r.HasField("start_time"):
            start = r.start_time.seconds + r.start_time.nanos / 1e9
        return RunStarted(
            run_id=r.run_id,
            project=r.project,
            entity=r.entity,
            sweep_id=r.sweep_id,
            group=r.run_group,
            config=_nested(r.config.update),
            resumed=r.resumed,
            start_time=start,
            host=r.host,
        )
    if kind == "preempting":
        return Preempting()
    return None


def _name(item: Any) -> str:
    return "/".join(item.nested_key) if len(item.nested_key) else str(item.key)


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _item_value(item: Any) -> Any:
    """A history item's value: ``value_json``, or the typed field some SDK versions set."""
    if item.value_json:
        return _json(item.value_json)
    which = item.WhichOneof("value") if "value" in item.DESCRIPTOR.oneofs_by_name else None
    if which is None or which == "none":
        return None
    if which == "json":
        return _json(item.json)
    return getattr(item, which)


def _nested(items: Any) -> dict[str, Any]:
    """Config items as the nested dict wandb.config shows (nested keys become sub-dicts)."""
    out: dict[str, Any] = {}
    for item in items:
        path = list(item.nested_key) if len(item.nested_key) else [item.key]
        node = out
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[path[-1]] = _json(item.value_json)
    return out


# ------------------------------------------------------------------------- a run's files


#: How far into a transaction log :func:`run_record` looks: wandb writes the run record first.
_RUN_RECORD_WITHIN = 1 << 20


def run_record(path: Path) -> RunStarted | None:
    """The run record of one transaction log (host, start time...); None before wandb wrote it.

    Reads only the start of the file, however long the run has logged.

    Raises:
        WandbError: the file cannot be read or is no transaction log, or wandb is missing.
    """
    for data in TransactionLogReader(path).read_new_records(max_bytes=_RUN_RECORD_WITHIN):
        event = decode_record(data)
        if isinstance(event, RunStarted):
            return event
    return None


def find_run_logs(wandb_dir: str | Path, run_id: str) -> list[Path]:
    """Every transaction log of ``run_id`` under ``wandb_dir`` (the run's ``WANDB_DIR``).

    wandb puts a run in ``<WANDB_DIR>/wandb/`` (``.wandb/`` if that exists) in a folder
    ``offline-run-<YYYYmmdd_HHMMSS>-<id>`` (``run-...`` when online). Each attempt of a run
    resumed under the same id has its own folder; an attempt that starts in the same second as
    an earlier one gets ``-1``, ``-2``, ... after the id (as wandb 0.28 and later name them, so
    two attempts never share a folder). The result is in start order: by the folder's
    timestamp, then that number, then the file's modification time. A folder linked in by the
    agent (a log the script wrote elsewhere, see ``_adopt.py``) counts as one of the run's, its
    one log whatever id it was named after.
    """
    root = Path(wandb_dir)
    name = f"run-{run_id}.wandb"
    found: list[tuple[str, int, float, str, Path]] = []
    for sub in ("wandb", ".wandb"):
        try:
            folders = list((root / sub).iterdir())
        except OSError:  # not there (yet)
            continue
        for folder in folders:
            match = RUN_FOLDER.match(folder.name)
            if match is None:
                continue
            index = attempt_index(match.group(2), run_id)
            if index is None:
                continue
            # Also rules out another run whose id is this one's plus "-<n>": its file differs.
            path = folder / name
            if folder.is_symlink():  # a log the script wrote elsewhere, linked in (_adopt.py)
                path = _only_log(folder) or path
            try:
                mtime = path.stat().st_mtime
            except OSError:
                continue
            found.append((match.group(1), index, mtime, folder.name, path))
    return [p for *_, p in sorted(found)]


def _only_log(folder: Path) -> Path | None:
    """The one transaction log in ``folder``, if it holds exactly one."""
    try:
        logs = [p for p in folder.iterdir() if p.name.startswith("run-") and p.suffix == ".wandb"]
    except OSError:
        return None
    return logs[0] if len(logs) == 1 else None


def attempt_index(tail: str, run_id: str) -> int | None:
    """0 for a folder name ending ``-<run_id>``, n for ``-<run_id>-<n>``; None for neither."""
    if tail == run_id:
        return 0
    suffix = tail.removeprefix(f"{run_id}-")
    return int(suffix) if suffix != tail and suffix.isdigit() else None


class LogFilter(Protocol):
    """Which of a run's transaction logs a :class:`RunLogReader` reads, and how far."""

    def __call__(self, path: Path) -> bool | None:
        """True to read ``path``, False to leave it out, None: ask again on the next read."""

    def end_of(self, path: Path) -> int | None:
        """How far into ``path`` to read (None: all of it, as it grows)."""


class RunLogReader:
    """Incremental reader of all of a run's transaction logs (one per attempt), in start order.

    New attempts' files are picked up as they appear. Events of an older attempt come before
    those of a newer one; each attempt starts with its :class:`RunStarted` event. ``accept``,
    given, decides for each file as it appears whether it is read, and how far (an agent
    leaves out another attempt's file, see ``_attempts.AttemptLogs``).
    """

    def __init__(self, wandb_dir: str | Path, run_id: str, accept: LogFilter | None = None) -> None:
        self.wandb_dir = Path(wandb_dir)
        self.run_id = run_id
        self._accept = accept
        self._readers: dict[Path, TransactionLogReader] = {}
        self._refused: set[Path] = set()
        self._order: list[Path] = []

    @property
    def paths(self) -> list[Path]:
        """The files found so far, in start order."""
        return list(self._order)

    def read_new(self) -> list[Event]:
        """Events completed since the last call, across every attempt's file."""
        found = find_run_logs(self.wandb_dir, self.run_id)
        for path in found:
            if path in self._readers or path in self._refused:
                continue
            verdict = True if self._accept is None else self._accept(path)
            if verdict:
                end = None if self._accept is None else self._accept.end_of(path)
                self._readers[path] = TransactionLogReader(path, end=end)
            elif verdict is not None:
                self._refused.add(path)
        known = [p for p in found if p in self._readers]
        self._order = [*known, *(p for p in self._readers if p not in found)]
        events: list[Event] = []
        for path in self._order:
            events.extend(self._readers[path].read_new())
        return events
