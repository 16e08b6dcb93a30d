"""Pure summaries of a sweep's runs: counts by state, the best runs, how far it has got.

Read-only over :class:`~sweepherd.runs.Run` records; the CLI and the live views render them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sweepherd.config import SweepConfig
from sweepherd.runs import Run, RunState

#: How the views call a preempted or lost run that will not run again.
GIVEN_UP = "given up"
#: States whose metric value counts for "best": the run produced a full or partial result.
_RANKED = (RunState.FINISHED, RunState.STOPPED)


@dataclass(frozen=True)
class Progress:
    """How far a sweep has got."""

    n_done: int  # runs in a terminal state
    n_running: int
    n_waiting: int  # preempted or lost, to be run again
    expected: int | None  # runs the sweep will make in all, when known (grid size, run_cap)
    counts: dict[RunState, int]
    n_given_up: int = 0  # lost or timed out too often to run again (sweepherd.runs.MAX_*)
    #: Runs by state as the views show them: those given up under "given up", not under the
    #: preempted or lost state they stay in (states with no run left out).
    shown: tuple[tuple[str, int], ...] = ()

    @property
    def n_settled(self) -> int:
        """Runs that will not run again: done, or lost too often."""
        return self.n_done + self.n_given_up

    @property
    def fraction(self) -> float | None:
        if not self.expected:
            return None
        return min(1.0, self.n_settled / self.expected)


def count_states(runs: Iterable[Run]) -> dict[RunState, int]:
    """How many runs are in each state (every state present, zeros included)."""
    counter = Counter(r.state for r in runs)
    return {state: counter.get(state, 0) for state in RunState}


def expected_runs(config: SweepConfig) -> int | None:
    """The number of runs the sweep will make, if bounded: the grid size and/or ``run_cap``."""
    from sweepherd.search import grid_size  # numpy: only when asked

    bound = grid_size(config) if config.method == "grid" else None
    if config.run_cap is not None:
        bound = config.run_cap if bound is None else min(bound, config.run_cap)
    return bound


def progress(config: SweepConfig, runs: Sequence[Run]) -> Progress:
    """The progress of a sweep from its runs."""
    counts = count_states(runs)
    n_done = sum(n for state, n in counts.items() if state.is_terminal)
    given_up = Counter(r.state for r in runs if r.gave_up)
    n_given_up = sum(given_up.values())
    n_waiting = counts[RunState.PREEMPTED] + counts[RunState.LOST] - n_given_up
    shown = [(state.value, counts[state] - given_up[state]) for state in RunState]
    shown.append((GIVEN_UP, n_given_up))
    return Progress(
        n_done,
        counts[RunState.RUNNING],
        n_waiting,
        expected_runs(config),
        counts,
        n_given_up,
        tuple((label, n) for label, n in shown if n),
    )


def state_label(run: Run) -> str:
    """A run's state as the views show it: ``given up`` for one that will not run again."""
    return GIVEN_UP if run.gave_up else run.state.value


def failed_runs(runs: Iterable[Run]) -> list[Run]:
    """Runs that failed, and lost or preempted runs that will not be run again (see
    :func:`why_failed`)."""
    return [r for r in runs if r.state is RunState.FAILED or r.gave_up]


def why_failed(run: Run) -> str | None:
    """The reason of a failed run; for a run given up, why it is not run again."""
    if run.gave_up and run.state is RunState.PREEMPTED:
        return (
            f"stopped by the job's time limit {run.timeouts} times, starting over each time "
            "(no checkpoint in $SWEEPHERD_CHECKPOINT_DIR), so not resumed again: give it a "
            "longer --time, or save checkpoints there and resume from them (a script that keeps "
            "them elsewhere: leave any file there)"
        )
    if run.gave_up:
        return (
            f"lost {run.losses} times, so not run again (its setting may bring its node down); "
            f"last: {run.reason or 'no reason recorded'}"
        )
    return run.reason


def best_runs(config: SweepConfig, runs: Iterable[Run], n: int = 5) -> list[Run]:
    """The ``n`` best runs with a metric value, best first (finished or stopped early)."""
    if config.metric is None:
        return []
    sign = -1.0 if config.metric.goal == "maximize" else 1.0
    ranked = [r for r in runs if r.state in _RANKED and r.metric is not None]
    ranked.sort(key=lambda r: (sign * (r.metric or 0.0), r.seq))  # ties: the earlier run first
    return ranked[:n]


def without_metric(config: SweepConfig, runs: Iterable[Run]) -> list[Run]:
    """Finished runs that never reported the sweep's metric."""
    if config.metric is None:
        return []
    return [r for r in runs if r.state is RunState.FINISHED and r.metric is None]


def run_as_dict(run: Run) -> dict[str, object]:
    """A run as plain JSON-ready data (``--json`` outputs and exports)."""
    return {
        "id": run.id,
        "state": run.state.value,
        "metric": run.metric,
        "metric_range": None if run.metric_range is None else list(run.metric_range),
        "metric_last": run.metric_last,  # the last finite value logged (impute: latest)
        "params": dict(run.params),
        "attempt": run.attempt,
        "result_attempt": run.result_attempt,  # below attempt: an earlier attempt's late finish
        "losses": run.losses,  # attempts declared lost
        "timeouts": run.timeouts,  # attempts stopped by a time limit with no checkpoint kept
        "will_run_again": run.will_run_again,
        "node": run.node,
        "gpus": run.gpus,
        "job": run.job,
        "agent": run.agent,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_s": run.duration_s,
        "exit_code": run.exit_code,
        "reason": run.reason,
        "summary": dict(run.summary),
    }


#: What ``sweep_state`` may say, for ``sweepherd ls`` and the live view's header.
SWEEP_STATES = ("empty", "running", "paused", "done", "cancelled")


def sweep_state(config: SweepConfig, runs: Sequence[Run], cancelled: bool) -> str:
    """Where a sweep is, in one word.

    - ``cancelled``: ``sweepherd cancel`` was run (runs may still be stopping);
    - ``empty``: no run was ever claimed;
    - ``running``: a run is in flight;
    - ``done``: nothing is in flight or waiting, and no new run may start: the grid is
      exhausted, ``run_cap`` is reached, or a run met ``metric.target``;
    - ``paused``: none of the above: runs remain (or wait to resume) but nothing runs, so an
      agent has to be started (random and bayes search without ``run_cap`` never end by
      themselves and show as paused when no agent works on them).
    """
    if cancelled:
        return "cancelled"
    if not runs:
        return "empty"
    prog = progress(config, runs)
    if prog.n_running:
        return "running"
    if prog.n_waiting:
        return "paused"
    from sweepherd.search import done_reason

    if done_reason(config, runs) is not None:
        return "done"
    if prog.expected is not None and prog.n_settled >= prog.expected:
        return "done"
    return "paused"


def throughput_per_min(runs: Iterable[Run], now: float, window_s: float = 900.0) -> float | None:
    """Runs ended per minute over the last ``window_s`` seconds (or since the sweep started).

    None until a run has ended in the window: there is nothing to extrapolate from.
    """
    ends: list[float] = []
    first_start: float | None = None
    for run in runs:
        if run.created_at is not None:
            first_start = (
                run.created_at if first_start is None else min(first_start, run.created_at)
            )
        if run.state.is_terminal and run.ended_at is not None and run.ended_at >= now - window_s:
            ends.append(run.ended_at)
    if not ends or first_start is None:
        return None
    span_s = now - max(now - window_s, first_start)
    if span_s <= 0:
        return None
    return len(ends) / span_s * 60.0


def eta_s(prog: Progress, runs_per_min: float | None) -> float | None:
    """Seconds until the expected number of runs is done at ``runs_per_min``; None if unknown."""
    if prog.expected is None:
        return None
    left = prog.expected - prog.n_settled
    if left <= 0:
        return 0.0
    if not runs_per_min:
        return None
    return left / runs_per_min * 60.0
