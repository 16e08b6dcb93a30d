"""The vocabulary every layer shares about runs: their states and the read-only run record.

A *run* is one trial of the sweep: one point of the search space, run by the user's command.
It keeps its id across attempts: a run that was preempted or lost is run again under the
same id (``attempt`` counts how many times it was started), so W&B sees one run that resumed.

This module sits at the bottom of the import graph: the store folds its journal into
:class:`Run` records, the search methods and early termination read them, and the monitor
renders them. It imports nothing from sweepherd.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class RunState(str, Enum):
    """Where a run is in its life."""

    RUNNING = "running"  # claimed by an agent, whose trial process is (or is about to be) running
    FINISHED = "finished"  # the command exited 0
    FAILED = "failed"  # the command exited non-zero, died of a signal, or could not start
    STOPPED = "stopped"  # stopped early by early termination (hyperband); not a failure
    PREEMPTED = "preempted"  # stopped by a Slurm warning signal or SIGTERM; resumed (MAX_TIMEOUTS)
    LOST = "lost"  # its agent went silent past the grace period; run again (see MAX_LOSSES)
    KILLED = "killed"  # stopped because the sweep was cancelled

    @property
    def is_terminal(self) -> bool:
        """True when the run will never run again."""
        return self in _TERMINAL

    @property
    def is_rerunnable(self) -> bool:
        """True when an agent should start this run again (same id, next attempt)."""
        return self in (RunState.PREEMPTED, RunState.LOST)


_TERMINAL = frozenset({RunState.FINISHED, RunState.FAILED, RunState.STOPPED, RunState.KILLED})

#: A run whose agent was lost this many times is not started again: a setting that brings its
#: node down (memory beyond the node's, a kernel crash) would otherwise take every node of the
#: sweep down in turn. It stays ``lost``, so a report from an agent that was only cut off still
#: counts (see :attr:`Run.gave_up`).
MAX_LOSSES = 3

#: A run stopped this many times by its job's time limit while keeping no checkpoint in
#: ``$SWEEPHERD_CHECKPOINT_DIR`` is not resumed again: it starts from scratch each time, so it
#: will never fit in the job's ``--time`` and would requeue the job forever (submitit's
#: ``max_num_timeout`` stops at the same number). It stays ``preempted`` (see
#: :attr:`Run.gave_up`). Runs that checkpoint there resume for as long as they need.
MAX_TIMEOUTS = 3

#: Set by ``--all-nodes`` to the number of the signal it sends its agents for Slurm's time-limit
#: warning (one ignored by default, like SIGURG, but not one a terminal sends: only agents it
#: starts know it). USR1 itself, as sweepherd's jobs ask Slurm for it, means the same. A run
#: stopped by either that keeps no checkpoint counts toward :data:`MAX_TIMEOUTS`. (Defined here,
#: not in the agent package, so the fan-out of a batch job names it without importing the agent.)
TIME_LIMIT_SIGNAL_ENV = "SWEEPHERD_TIME_LIMIT_SIGNAL"


@dataclass(frozen=True)
class Run:
    """One run of a sweep, as folded from the journal. Read-only: change it through the store."""

    id: str
    params: Mapping[str, Any]  # nested dict of plain Python values, as wandb.config sees them
    state: RunState
    attempt: int = 1  # 1 for the first start, +1 for each resume after preemption or loss
    seq: int = 0  # order of creation within the sweep (0-based)
    agent: str | None = None  # the agent that holds (or last held) the run
    node: str | None = None  # $SLURMD_NODENAME or the host name
    gpus: str | None = None  # the CUDA_VISIBLE_DEVICES value given to the trial
    job: str | None = None  # the Slurm job id of the agent, if any
    created_at: float | None = None  # unix time of the first claim
    started_at: float | None = None  # unix time of the current attempt's claim
    ended_at: float | None = None
    exit_code: int | None = None  # negative: killed by that signal, as in subprocess
    metric: float | None = None  # the run's value of metric.name (its summary value)
    # The lowest and highest finite value of metric.name the run logged (history and summary):
    # W&B's bayes search learns from a run's best value, and imputes its worst, not its last.
    metric_range: tuple[float, float] | None = None
    # The last finite value of metric.name in the run's history: what W&B's ``impute: latest``
    # gives a failed run (a run that logged NaN as it diverged keeps its last real value).
    metric_last: float | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)  # last logged value of every key
    reason: str | None = None  # why it failed / was stopped, in words
    losses: int = 0  # how many of its attempts were declared lost
    timeouts: int = 0  # attempts stopped by the job's time limit with no checkpoint kept
    # The attempt whose result a terminal run holds: an older one than ``attempt`` when a
    # run declared lost finished after all while another agent was running it again.
    result_attempt: int | None = None

    @property
    def will_run_again(self) -> bool:
        """True when agents will start this run again: preempted fewer than
        :data:`MAX_TIMEOUTS` times by a time limit without a checkpoint, or lost fewer than
        :data:`MAX_LOSSES` times."""
        if self.state is RunState.LOST:
            return self.losses < MAX_LOSSES
        return self.state is RunState.PREEMPTED and self.timeouts < MAX_TIMEOUTS

    @property
    def gave_up(self) -> bool:
        """True for a lost or preempted run that will not be started again (lost
        :data:`MAX_LOSSES` times, or stopped :data:`MAX_TIMEOUTS` times by a time limit)."""
        return self.state.is_rerunnable and not self.will_run_again

    @property
    def duration_s(self) -> float | None:
        """Seconds the current attempt took; None while it is still running."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


def metric_number(value: Any) -> float | None:
    """A logged value as a metric value: a finite float, or None.

    Numbers count (not booleans), and so do numeric strings, since :func:`sweepherd.log` keeps
    NaN and infinities as text; NaN, infinities and anything else are not a value.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an int beyond a float (JSON allows any): not a finite value
            return None
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def finite_number(value: Any) -> float | None:
    """A logged number (not a boolean, not a numeric string) as a finite float, or None: what
    W&B's engine counts as a value (``sweeps.run.is_number``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return metric_number(value)


def logged_range(history: Sequence[float], last: float | None) -> tuple[float, float] | None:
    """The lowest and highest of a metric's logged values and its summary value (``last``);
    None when there are none."""
    values = [*history, *(() if last is None else (last,))]
    return (min(values), max(values)) if values else None
