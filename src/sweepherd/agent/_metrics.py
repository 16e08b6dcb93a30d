"""Reading a live trial's metrics, incrementally, from every channel the script may use.

Two channels feed a run's metrics:

- ``metrics.jsonl`` in the run folder, appended by :func:`sweepherd.log` (no wandb needed);
- the run's wandb transaction log (``wandb/offline-run-*/run-<id>.wandb``), when the script
  uses wandb — read by :mod:`sweepherd.wandb` without touching the script.

:class:`RunMetrics` merges them into the two things the agent needs: the history of each key
(values in the order they were logged: hyperband counts iterations this way) and the summary
(the last value logged for each key, or the value the script set in ``wandb.summary``).
"""

from __future__ import annotations

import json
import logging
import math
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sweepherd.errors import SweepherdError
from sweepherd.runs import finite_number, logged_range, metric_number

log = logging.getLogger("sweepherd.agent")


class MetricUpdate(Protocol):
    """Something a source read: a logged history row, or a summary the script set."""

    @property
    def values(self) -> Mapping[str, Any]: ...

    @property
    def kind(self) -> str: ...  # "history" | "summary"


class MetricSource(Protocol):
    """A channel of metric rows that can be read again and again, returning only what is new."""

    def read_new(self) -> Sequence[MetricUpdate]: ...


@dataclass(frozen=True)
class _Row:
    values: Mapping[str, Any]
    kind: str = "history"


class JsonlSource:
    """Follows a JSON-lines file appended by :func:`sweepherd.log`.

    Keeps a byte offset; a last line without its newline is left for the next read (the writer
    may be in the middle of it). Lines that are not JSON objects are skipped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.n_bad_lines = 0

    def read_new(self) -> list[_Row]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        out: list[_Row] = []
        for line in data[: end + 1].splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                self.n_bad_lines += 1
                continue
            if isinstance(row, dict):
                out.append(_Row(row))
            else:
                self.n_bad_lines += 1
        return out


@dataclass
class _Channel:
    """What one source has logged: each key's values, and the step each key last logged at."""

    history: dict[str, list[Any]] = field(default_factory=dict)
    last_step: dict[str, Any] = field(default_factory=dict)

    def add(self, values: Mapping[str, Any]) -> None:
        """Append a history row; a value logged again at the same step replaces the first.

        ``wandb.log(..., step=s)`` twice with the same ``s`` makes one row in W&B, so the
        second value is not one more iteration for hyperband. A lower step starts a new row
        (a resumed attempt counts its steps from 0 again).
        """
        step = values.get("_step")
        for key, value in values.items():
            column = self.history.setdefault(key, [])
            if step is not None and column and self.last_step.get(key) == step:
                column[-1] = value
            else:
                column.append(value)
            self.last_step[key] = step


@dataclass
class RunMetrics:
    """The merged view of a run's metrics so far.

    Each source keeps its own history; a key logged through both channels (``wandb.log`` and
    :func:`sweepherd.log` beside it) counts once, from the channel that has more of it (the
    same values, the other one lagging), not twice.
    """

    sources: list[MetricSource] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    errors: set[str] = field(default_factory=set)  # read errors already warned about
    #: The exit code in wandb's exit record of the newest attempt's log (``wandb.finish``
    #: done), None before it or when there is none.
    wandb_exit_code: int | None = None
    _channels: dict[int, _Channel] = field(default_factory=dict)  # id(source) -> its rows

    @property
    def history(self) -> dict[str, list[Any]]:
        """Each key's values in log order, from the channel with the most of them."""
        out: dict[str, list[Any]] = {}
        for channel in self._channels.values():
            for key, values in channel.history.items():
                if len(values) > len(out.get(key, ())):
                    out[key] = values
        return out

    def update(self) -> bool:
        """Read every source; True if anything new arrived.

        A source that cannot be read (an I/O error, a file wandb did not write) is skipped this
        time with a warning (once per distinct error): the trial's metrics are a view, and
        losing the view must never stop the agent or the trial.
        """
        changed = False
        for source in self.sources:
            try:
                updates = source.read_new()
            except (OSError, SweepherdError) as exc:
                message = f"{exc}"
                if message not in self.errors:
                    self.errors.add(message)
                    log.warning("could not read a run's metrics: %s", message)
                continue
            channel = self._channels.setdefault(id(source), _Channel())
            for upd in updates:
                changed = True
                if upd.kind == "start":
                    self.wandb_exit_code = None  # a later attempt's log begins
                elif upd.kind == "exit":
                    code = upd.values.get("exit_code")
                    self.wandb_exit_code = code if isinstance(code, int) else None
                    continue
                elif upd.kind == "history":
                    channel.add(upd.values)
                self.summary.update(upd.values)
        return changed

    def metric_history(self, name: str) -> list[float]:
        """The values of ``name`` in log order that are finite numbers, as W&B's hyperband
        counts them: a numeric string (``"0.5"``) is not an iteration there, so not here."""
        columns = [channel.history for channel in self._channels.values()]
        key = _resolve(name, ChainMap(*columns))  # only the one key: no merged view is built
        values = max((c.get(key, []) for c in columns), key=len, default=[])
        return [v for v in map(finite_number, values) if v is not None]

    def metric_value(self, name: str) -> float | None:
        """The run's result for ``name``: its summary value, as W&B would use it."""
        return metric_number(self.summary.get(_resolve(name, self.summary)))

    def was_logged(self, name: str) -> bool:
        """``name`` was logged at all (NaN, infinite or not a number included)."""
        return _resolve(name, self.summary) in self.summary

    def metric_range(self, name: str) -> tuple[float, float] | None:
        """The lowest and highest value of ``name`` the run logged, its summary included (W&B's
        ``metric_extremum``: its bayes search learns from a run's best value); None if none."""
        return logged_range(self.metric_history(name), self.metric_value(name))

    def plain_summary(self) -> dict[str, Any]:
        """The summary without wandb's internal keys and with JSON-safe scalar values."""
        out: dict[str, Any] = {}
        for key, value in self.summary.items():
            if key.startswith("_wandb"):
                continue
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = str(value)
            elif isinstance(value, (int, float, str, bool)) or value is None:
                out[key] = value
        return out


def _resolve(name: str, keys: Mapping[str, Any]) -> str:
    """``val.loss`` is ``val/loss`` when only that exists: wandb's transaction log names a
    metric logged as ``{"val": {"loss": x}}`` with ``/``, while W&B users write it dotted.
    """
    if name in keys or "." not in name:
        return name
    slashed = name.replace(".", "/")
    return slashed if slashed in keys else name
