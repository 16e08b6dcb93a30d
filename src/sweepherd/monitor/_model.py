"""The live view's model: everything one frame shows, gathered, as plain immutable data.

:class:`~sweepherd.monitor.WatchCollector` fills it from the sweep directory (and Slurm);
:func:`~sweepherd.monitor.render_watch` and :func:`~sweepherd.monitor.plain_report` turn it
into text without touching a file, so a frame can be rendered in a test without a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sweepherd.monitor._slurm import SlurmPanel
from sweepherd.monitor._summary import Progress
from sweepherd.runs import Run


@dataclass(frozen=True)
class InFlight:
    """A run in flight: where it runs, for how long, and its latest metric value."""

    run_id: str
    node: str | None
    gpus: str | None
    attempt: int
    elapsed_s: float | None
    latest: float | None  # the latest logged value of the sweep's metric
    n_logged: int  # rows (steps) logged so far
    agent_silent_s: float | None = None  # set when the agent's heartbeat is overdue


@dataclass(frozen=True)
class Failure:
    """A failed run with the end of its stderr (its latest attempt)."""

    run_id: str
    exit_code: int | None
    reason: str | None
    stderr_tail: tuple[str, ...]
    node: str | None = None
    ended_at: float | None = None


@dataclass(frozen=True)
class WatchModel:
    """One frame of ``sweepherd watch``."""

    sweep_id: str
    name: str | None
    method: str
    metric: str | None
    goal: str | None
    state: str  # see sweepherd.monitor.sweep_state
    progress: Progress
    now: float
    runs_per_min: float | None = None
    eta_s: float | None = None
    running: tuple[InFlight, ...] = ()
    best: tuple[Run, ...] = ()
    failures: tuple[Failure, ...] = ()  # the latest failures, newest first
    n_failed: int = 0
    slurm: SlurmPanel = field(default_factory=SlurmPanel)
    n_agents_alive: int | None = None  # None: heartbeats not read
    ended: tuple[Run, ...] = ()  # runs that ended since the previous frame (plain output)
    note: str | None = None  # about the sweep itself (a --backend wandb sweep's runs are on W&B)
    stalled: str | None = None  # work is left but no agent is alive or on its way: what to do

    @property
    def finished(self) -> bool:
        """True when the sweep will not change any more by itself (done or cancelled, idle)."""
        return self.state in ("done", "cancelled") and not self.running
