"""``runs/<id>/live.json``: a running run's metric as the agent that runs it sees it.

The agent rewrites this small file atomically whenever the run logs something, so that other
agents (hyperband's decisions, the bayes search's ``impute_while_running``) and ``watch`` read
one tiny file instead of parsing the run's logs. Kept outside the agent package, whose import
``watch`` need not pay::

    {"run", "attempt", "metric": name, "n": values so far, "last": summary value,
     "history": [values in log order], "t": unix time}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweepherd.runs import Run, RunState, finite_number, logged_range

#: The file in a run folder where the agent publishes the run's metric while it runs.
LIVE_FILE = "live.json"


@dataclass(frozen=True)
class LiveMetric:
    """What a live file says of the metric: its finite values in log order, and the last
    summary value (None when there is none)."""

    history: list[float]
    last: float | None = None

    @property
    def range(self) -> tuple[float, float] | None:
        """The lowest and highest value logged so far, the summary included."""
        return logged_range(self.history, self.last)

    @property
    def latest(self) -> float | None:
        """The value logged last (the summary value when no history was kept)."""
        return self.history[-1] if self.history else self.last


def live_document(
    run_id: str, attempt: int, metric: str | None, history: Sequence[float], last: float | None
) -> bytes:
    """The live file's bytes for a run's current view of its metric."""
    doc = {
        "run": run_id,
        "attempt": attempt,
        "metric": metric,
        "n": len(history),
        "last": last,
        "history": list(history),
        "t": time.time(),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def read_live(path: Path, metric: str) -> LiveMetric | None:
    """The live file's view of ``metric``; empty if it is of another metric or malformed;
    None when it cannot be read (missing, or being replaced: try again later)."""
    try:
        doc: Any = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("metric") != metric:
        return LiveMetric([])
    raw = doc.get("history")
    numbers = map(finite_number, raw) if isinstance(raw, list) else ()
    return LiveMetric([v for v in numbers if v is not None], finite_number(doc.get("last")))


def read_running(
    runs: Iterable[Run], run_path: Callable[[str], Path], metric: str
) -> dict[str, LiveMetric]:
    """The live view of ``metric`` of each running run in ``runs``, by run id; runs whose file
    cannot be read (not written yet, or being replaced) are left out. ``run_path`` gives a
    run's folder (``SweepStore.run_path``)."""
    views = {}
    for run in runs:
        if run.state is RunState.RUNNING:
            live = read_live(run_path(run.id) / LIVE_FILE, metric)
            if live is not None:
                views[run.id] = live
    return views
