"""A run's metric as it is logged, read live from the run folder.

A script reports through ``sweepherd.log`` (``runs/<id>/metrics.jsonl``) or through wandb (the
transaction log ``runs/<id>/wandb/offline-run-*/run-<id>.wandb``). :class:`RunMetricFollower`
follows both incrementally (stat before read; see :mod:`sweepherd.monitor._follow`) and keeps
the latest value of the sweep's metric, and its whole history when asked (for plots).

When a script logs the metric through both channels, the history of the channel with more
points is used (they would otherwise count every step twice); the latest value is whichever
channel logged last.

Where the wandb package is not installed (a login node with a bare environment), the wandb
log cannot be decoded; the follower then reads ``runs/<id>/live.json`` instead, the small file
the agent rewrites with the metric as it sees it (read only when its size or mtime changed).
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweepherd.live_metric import LIVE_FILE, read_live
from sweepherd.monitor._follow import ChangeWatcher, IoStats, JsonLinesFollower
from sweepherd.runs import metric_number


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric: its step (``_step``, or the row's index) and value."""

    step: float
    value: float


def lookup(values: Mapping[str, Any], name: str) -> Any:
    """``values[name]``; a dotted name also finds wandb's ``/``-joined nested key."""
    if name in values:
        return values[name]
    return values.get(name.replace(".", "/"))


@functools.cache
def wandb_installed() -> bool:
    """Whether the wandb package (needed to decode its transaction logs) is importable."""
    if "wandb" in sys.modules:  # imported already, or blocked (None)
        return sys.modules["wandb"] is not None
    return importlib.util.find_spec("wandb") is not None


class _Channel:
    """The metric's points as read from one channel."""

    def __init__(self) -> None:
        self.points: list[MetricPoint] = []
        self.latest: float | None = None
        self.n_rows = 0


class RunMetricFollower:
    """Follows one run's metric in its folder; :meth:`poll` reads what is new.

    Args:
        run_dir: the run's folder (``runs/<id>``; the trial's ``WANDB_DIR``).
        run_id: the run id (names the wandb log file).
        metric: the metric's name; None follows only the number of logged rows.
        stats: where the file accesses are counted.
        keep_history: keep every point (plots), not just the latest value (the live view).
    """

    def __init__(
        self,
        run_dir: Path,
        run_id: str,
        metric: str | None,
        stats: IoStats | None = None,
        *,
        keep_history: bool = False,
    ) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.metric = metric
        self.stats = stats if stats is not None else IoStats()
        self.keep_history = keep_history
        self._jsonl = JsonLinesFollower(run_dir / "metrics.jsonl", self.stats)
        self._json_channel = _Channel()
        self._wandb_channel = _Channel()
        self._wandb_dir_mtime: int | None = None
        self._log_pending = False  # a run folder whose log file wandb has not created yet
        self._wandb_logs: dict[Path, Any] = {}  # path -> TransactionLogReader
        self._wandb_sizes: dict[Path, int] = {}
        self._live = ChangeWatcher(run_dir / LIVE_FILE, self.stats)
        self._live_channel = _Channel()
        self.latest: float | None = None
        self.n_wandb_errors = 0

    @property
    def n_rows(self) -> int:
        """Rows (logged steps) seen so far, in the channel that logged more."""
        channels = (self._json_channel, self._wandb_channel, self._live_channel)
        return max(c.n_rows for c in channels)

    @property
    def history(self) -> list[MetricPoint]:
        """The metric's logged points in log order (with ``keep_history``)."""
        channels = (self._json_channel, self._wandb_channel, self._live_channel)
        longest: list[MetricPoint] = []
        for channel in channels:  # ties: the first channel (metrics.jsonl)
            if len(channel.points) > len(longest):
                longest = channel.points
        return list(longest)

    def poll(self) -> bool:
        """Read what is new in every channel; True if a row arrived."""
        other = self._poll_wandb() if wandb_installed() else self._poll_live()
        return self._poll_jsonl() or other

    def _poll_live(self) -> bool:
        if self.metric is None or not self._live.changed():
            return False
        live = read_live(self._live.path, self.metric)
        if live is None:
            return False
        self.stats.n_open += 1
        if not live.history and live.last is None:  # of another metric, or nothing yet
            return False
        channel = _Channel()
        channel.n_rows = len(live.history)
        channel.latest = live.last
        if self.keep_history:
            channel.points = [MetricPoint(i, v) for i, v in enumerate(live.history)]
        new = channel.n_rows != self._live_channel.n_rows or channel.latest != self.latest
        self._live_channel = channel
        if new and channel.latest is not None:
            self.latest = channel.latest
        return new

    def _add(self, channel: _Channel, values: Mapping[str, Any], step: Any) -> None:
        channel.n_rows += 1
        if self.metric is None:
            return
        value = metric_number(lookup(values, self.metric))
        if value is None:
            return
        channel.latest = self.latest = value
        if self.keep_history:
            s = metric_number(step)
            channel.points.append(MetricPoint(len(channel.points) if s is None else s, value))

    def _poll_jsonl(self) -> bool:
        lines = self._jsonl.read_new_lines()
        if self._jsonl.file.restarted:
            self._json_channel = _Channel()
        if self.keep_history or self.metric is None:
            for line in lines:
                row = self._jsonl.parse(line)
                if row is not None:
                    self._add(self._json_channel, row, row.get("_step"))
            return bool(lines)
        # The live view needs the count and the latest value only: parse from the end until
        # a row holds the metric (catching up on a long file costs one parse, not thousands).
        channel = self._json_channel
        channel.n_rows += len(lines)
        needle = self.metric.encode()
        for line in reversed(lines):
            if needle not in line and needle.replace(b".", b"/") not in line:
                continue
            row = self._jsonl.parse(line)
            value = None if row is None else metric_number(lookup(row, self.metric))
            if value is not None:
                channel.latest = self.latest = value
                break
        return bool(lines)

    def _poll_wandb(self) -> bool:
        from sweepherd.errors import WandbError
        from sweepherd.wandb import HistoryRow, SummaryUpdate, TransactionLogReader, find_run_logs

        wandb_dir = self.run_dir / "wandb"
        self.stats.n_stat += 1
        try:
            mtime = wandb_dir.stat().st_mtime_ns
        except OSError:
            return False
        # A new offline-run-* folder (a new attempt) changes wandb/'s mtime; its log file,
        # created a moment later, changes only the folder's: look again until it is there.
        if mtime != self._wandb_dir_mtime or self._log_pending:
            self._wandb_dir_mtime = mtime
            found = find_run_logs(self.run_dir, self.run_id)
            for path in found:
                if path not in self._wandb_logs:
                    self._wandb_logs[path] = TransactionLogReader(path)
            self._log_pending = _n_attempt_folders(wandb_dir, self.run_id) > len(found)
        new = False
        for path, reader in self._wandb_logs.items():
            self.stats.n_stat += 1
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if size == self._wandb_sizes.get(path):
                continue
            before = reader.offset
            self._wandb_sizes[path] = size
            try:
                events = reader.read_new()
            except WandbError:
                self.n_wandb_errors += 1
                continue
            self.stats.n_open += 1
            self.stats.n_bytes += max(0, size - before)
            for event in events:
                if isinstance(event, HistoryRow):
                    step = event.step if event.step is not None else event.values.get("_step")
                    self._add(self._wandb_channel, event.values, step)
                    new = True
                elif isinstance(event, SummaryUpdate) and self.metric is not None:
                    value = metric_number(lookup(event.values, self.metric))
                    if value is not None:  # the script set the summary itself
                        self._wandb_channel.latest = self.latest = value
        return new


def _n_attempt_folders(wandb_dir: Path, run_id: str) -> int:
    """How many of wandb's run folders of ``run_id`` there are, with a log file or not yet."""
    try:
        return sum(
            1
            for f in wandb_dir.iterdir()
            if f.name.startswith(("offline-run-", "run-"))
            and run_id in f.name
            and not f.is_symlink()
        )
    except OSError:
        return 0


def load_history(run_dir: Path, run_id: str, metric: str) -> list[MetricPoint]:
    """Every logged point of ``metric`` in a run's folder (both channels; see the module)."""
    follower = RunMetricFollower(run_dir, run_id, metric, keep_history=True)
    follower.poll()
    return follower.history
