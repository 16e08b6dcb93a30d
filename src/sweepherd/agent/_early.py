"""Early termination in the agent: which of this agent's running trials hyperband stops.

Hyperband compares each running trial with every run of the sweep at the same number of
logged values (:func:`sweepherd.early_terminate.to_stop`). This agent knows its own trials'
histories from memory; every other run's comes from the ``live.json`` its agent publishes in
the run's folder (``{"run", "attempt", "metric", "n", "last", "history", "t"}``).

Reading them is kept cheap, since an agent looks on every poll and a sweep may have thousands
of runs on a shared filesystem:

- nothing is read until one of this agent's trials has logged as many values as the first
  band (before that no decision can stop anything);
- a file is parsed again only when its size or modification time changed (one ``stat``);
- a run that ended is read once after the journal says so (its agent wrote the final file
  before recording the end) and never looked at again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from sweepherd.agent._trial import Trial
from sweepherd.early_terminate import bands, stops
from sweepherd.errors import AgentError
from sweepherd.live_metric import read_live
from sweepherd.runs import Run
from sweepherd.store import Snapshot, SweepStore

log = logging.getLogger("sweepherd.agent")


class EarlyTermination:
    """Decides, from the histories of every run of the sweep, which own trials to stop."""

    def __init__(self, store: SweepStore, live_file: str) -> None:
        config = store.config
        if config.early_terminate is None or config.metric is None:
            raise AgentError("early termination needs early_terminate and metric in the config")
        self.store = store
        self.config = config
        self.metric = config.metric.name
        self.live_file = live_file
        self.first_band = bands(config.early_terminate)[0]
        self._seen: dict[str, tuple[tuple[int, int], list[float]]] = {}  # stat key, history
        self._ended: dict[str, list[float]] = {}  # runs that ended: their final history

    def to_stop(self, trials: Iterable[Trial], snap: Snapshot) -> list[tuple[Trial, str]]:
        """The trials in ``trials`` to stop now (those already stopping are left out), each
        with the reason its run records."""
        own = {t.run.id: t for t in trials if t.stop_cause is None}
        histories: dict[str, list[float]] = {
            run_id: t.metrics.metric_history(self.metric) for run_id, t in own.items()
        }
        if not any(len(h) >= self.first_band for h in histories.values()):
            return []
        for run in snap.runs.values():
            if run.id not in histories:
                history = self._history(run)
                if history:
                    histories[run.id] = history
        chosen = stops(self.config, histories, own.keys())
        out: list[tuple[Trial, str]] = []
        for run_id, stop in sorted(chosen.items()):
            reason = stop.describe(self.metric)
            log.info("run %s %s", run_id, reason)
            out.append((own[run_id], reason))
        return out

    def _history(self, run: Run) -> list[float]:
        """Another run's history, from its ``live.json`` when that changed."""
        if run.id in self._ended:
            return self._ended[run.id]
        path = self.store.run_path(run.id) / self.live_file
        history = self._read_if_changed(run.id, path)
        if run.state.is_terminal:
            self._ended[run.id] = history
            self._seen.pop(run.id, None)
        return history

    def _read_if_changed(self, run_id: str, path: Path) -> list[float]:
        try:
            st = path.stat()
        except OSError:
            return []
        key = (st.st_mtime_ns, st.st_size)
        seen = self._seen.get(run_id)
        if seen is not None and seen[0] == key:
            return seen[1]
        history = self._parse(path)
        if history is not None:
            self._seen[run_id] = (key, history)
            return history
        return seen[1] if seen is not None else []

    def _parse(self, path: Path) -> list[float] | None:
        """The metric history in a live file; None when it cannot be read (try again later)."""
        live = read_live(path, self.metric)
        return None if live is None else live.history
