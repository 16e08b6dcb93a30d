"""A run's metrics folded from its transaction-log events: history for hyperband, summary values.

Names are flat: a key logged as ``{"val": {"loss": x}}`` is ``val/loss`` (wandb's nested keys
joined with ``/``). A name given with dots (``val.loss``) is also found under ``val/loss`` when
no key is literally called ``val.loss``.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable, Mapping
from numbers import Real
from pathlib import Path
from typing import Any

from sweepherd.wandb._txlog import (
    ConfigUpdate,
    Event,
    HistoryRow,
    LogFilter,
    Preempting,
    RunExited,
    RunLogReader,
    RunStarted,
    SummaryUpdate,
)


def is_finite_number(value: Any) -> bool:
    """True for a finite int or float that is not a bool (the W&B engine's ``is_number``)."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


class MetricTracker:
    """What a run has reported so far, updated with :meth:`update` as events arrive.

    Args:
        track: the metric names whose full history to keep (``None``: every name). The summary
            and the last logged value are kept for every name regardless.

    The *summary* follows W&B: every logged step sets the summary of its keys to the logged
    value (wandb 0.31 writes these updates into the log itself), and a value the script sets in
    ``run.summary`` replaces it until the key is logged again. Events of several attempts of a
    run (see :class:`~sweepherd.wandb.RunLogReader`) fold into one history in log order.
    """

    def __init__(self, track: Iterable[str] | None = None) -> None:
        self._track = None if track is None else set(track)
        self._history: dict[str, list[Any]] = {}
        self._last_logged: dict[str, Any] = {}
        self._last_number: dict[str, float] = {}
        self._summary: dict[str, Any] = {}
        self.config: dict[str, Any] = {}
        self.run: RunStarted | None = None  # the latest attempt's run record
        self.exit: RunExited | None = None  # the latest attempt's exit record, if it ended
        self.n_rows = 0
        self.n_attempts = 0
        self.preempting = False

    def update(self, events: Iterable[Event]) -> None:
        """Fold ``events`` (in log order) into the tracker."""
        for event in events:
            if isinstance(event, HistoryRow):
                self.n_rows += 1
                for name, value in event.values.items():
                    self._last_logged[name] = value
                    if is_finite_number(value):
                        self._last_number[name] = float(value)
                    if self._track is None or name in self._track:
                        self._history.setdefault(name, []).append(value)
            elif isinstance(event, SummaryUpdate):
                self._summary.update(event.values)
                for name in event.removed:
                    self._summary.pop(name, None)
            elif isinstance(event, ConfigUpdate):
                _merge(self.config, event.values)
                for name in event.removed:
                    self.config.pop(name, None)
            elif isinstance(event, RunStarted):
                self.run = event
                self.exit = None
                self.preempting = False
                self.n_attempts += 1
                _merge(self.config, event.config)
            elif isinstance(event, RunExited):
                self.exit = event
            elif isinstance(event, Preempting):
                self.preempting = True

    @property
    def exit_code(self) -> int | None:
        """The latest attempt's exit code, or ``None`` while it runs or if it was killed."""
        return None if self.exit is None else self.exit.exit_code

    def history(self, name: str) -> list[float]:
        """The finite numeric values logged for ``name``, in log order (what hyperband reads).

        Raises:
            KeyError: ``name`` is not among the tracked names.
        """
        if self._track is not None and name not in self._track:
            raise KeyError(f"{name!r} is not tracked; pass it to MetricTracker(track=...)")
        values = self._history.get(self._resolve(name, self._history), [])
        return [float(v) for v in values if is_finite_number(v)]

    def summary(self, name: str) -> Any:
        """The run's summary value of ``name`` as W&B would show it (``None`` if never set).

        This is the last logged value, unless the script set ``run.summary[name]`` since;
        with ``define_metric(name, summary="min")`` wandb stores ``{"min": ...}`` here.
        """
        key = self._resolve(name, self._summary)
        if key in self._summary:
            return self._summary[key]
        key = self._resolve(name, self._last_logged)  # SDKs that do not log summary updates
        if key in self._last_logged:
            return self._last_logged[key]
        return _lookup_nested(self._summary, name)

    def value(self, name: str) -> float | None:
        """The run's number for ``name``: its summary when that is a finite number, otherwise
        (a ``define_metric`` summary, a string...) the last finite value logged, else ``None``.
        """
        summary = self.summary(name)
        if is_finite_number(summary):
            return float(summary)
        return self._last_number.get(self._resolve(name, self._last_number))

    @property
    def summary_values(self) -> dict[str, Any]:
        """Every summary value (flat names), wandb's own ``_``-prefixed keys included."""
        out = dict(self._last_logged)
        out.update(self._summary)
        return out

    @staticmethod
    def _resolve(name: str, keys: Mapping[str, Any]) -> str:
        if name in keys or "." not in name:
            return name
        slashed = name.replace(".", "/")
        return slashed if slashed in keys else name


def _merge(into: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _lookup_nested(summary: Mapping[str, Any], name: str) -> Any:
    """``a/b`` inside a summary value set as a dict (``run.summary["a"] = {"b": 1}``)."""
    for sep in ("/", "."):
        parts = name.split(sep)
        if len(parts) < 2:
            continue
        node: Any = summary.get(parts[0])
        for part in parts[1:]:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            return node
    return None


class MetricRow:
    """One thing read from the log, as the agent's metric merger takes it."""

    __slots__ = ("kind", "values")

    def __init__(self, values: Mapping[str, Any], kind: str) -> None:
        self.values = values
        # "history" (a logged step), "summary" (a summary update), "start" (an attempt's run
        # record) or "exit" (wandb's exit record: values {"exit_code": n})
        self.kind = kind

    def __repr__(self) -> str:
        return f"MetricRow({dict(self.values)!r}, kind={self.kind!r})"


class TransactionLogSource:
    """A run's wandb transaction logs as a metric source: ``read_new()`` gives new rows.

    History rows come out as ``kind="history"``, summary updates as ``kind="summary"``.
    """

    def __init__(self, wandb_dir: str | Path, run_id: str, accept: LogFilter | None = None) -> None:
        self.reader = RunLogReader(wandb_dir, run_id, accept)

    def read_new(self) -> list[MetricRow]:
        """The rows completed since the last call."""
        rows: list[MetricRow] = []
        for event in self.reader.read_new():
            if isinstance(event, HistoryRow):
                rows.append(MetricRow(event.values, "history"))
            elif isinstance(event, SummaryUpdate) and event.values:
                rows.append(MetricRow(event.values, "summary"))
            elif isinstance(event, RunStarted):
                rows.append(MetricRow({}, "start"))
            elif isinstance(event, RunExited):
                rows.append(MetricRow({"exit_code": event.exit_code}, "exit"))
        return rows


def transaction_log_source(
    wandb_dir: str | Path, run_id: str, accept: LogFilter | None = None
) -> TransactionLogSource | None:
    """A metric source over the run's transaction logs under ``wandb_dir`` (its ``WANDB_DIR``;
    ``accept``: which files to read, see :class:`RunLogReader`), or ``None`` when the wandb
    package is not installed here (then no script here can use it).
    """
    if importlib.util.find_spec("wandb") is None:
        return None
    return TransactionLogSource(wandb_dir, run_id, accept)
