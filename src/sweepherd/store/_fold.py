"""Folding journal events into the sweep's state: runs, cancellation, agents and Slurm jobs.

The journal holds these events, one JSON object per line, each with ``"e"`` (its type) and
``"t"`` (unix time); fields that would be null are left out:

=========== ============================================================================
``created`` the sweep was created: ``sweep``
``claim``   a run was (re)started: ``run, seq, attempt, agent`` [``params`` on attempt 1,
            ``node, gpus, job``]
``end``     an attempt ended: ``run, attempt, state`` [``exit_code, metric, range, summary,
            reason``]; ``range``: the lowest and highest value of the metric it logged
``lost``    a running attempt was declared lost: ``run, attempt`` [``reason``]
``cancel``  the sweep was cancelled [``reason``]
``agent``   an agent started or stopped: ``agent, event`` (start|stop) [``node, host, pid,
            job, slots``]
``job``     a Slurm job was submitted or changed: ``job`` and any other fields
``reply``   a claim request was answered with no run: ``req, reason``
=========== ============================================================================

Events written in answer to a claim request (see ``_requests.py``) also carry its token as
``req``: the results it reported (``end``), and its answer (``claim`` or ``reply``).

The same rules decide whether an event applies when a transaction is about to write it and
when a reader folds it, so a duplicate written by racing writers (which the lock prevents, but
see the lock's documented window) resolves the same way for everyone: the first claim of a run
id wins, and the first terminal result wins (:func:`result_applies`). Unknown event types are
ignored, so older readers survive newer writers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sweepherd.runs import Run, RunState


@dataclass(frozen=True)
class AgentInfo:
    """An agent as recorded by its ``agent`` events (liveness is in its heartbeat file)."""

    id: str
    state: str  # "running" after its start event, "stopped" after its stop event
    node: str | None = None
    host: str | None = None
    pid: int | None = None
    job: str | None = None
    slots: int | None = None
    started_at: float | None = None
    stopped_at: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """The sweep's state as of the last journal line read. Read-only."""

    runs: Mapping[str, Run]  # run id -> run, in creation order
    cancelled: bool = False
    cancel_reason: str | None = None
    agents: Mapping[str, AgentInfo] = field(default_factory=dict)
    jobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # Slurm job id -> info
    next_seq: int = 0  # the seq the next new run gets
    created_at: float | None = None
    n_events: int = 0  # events applied
    n_skipped: int = 0  # journal lines that could not be parsed (torn or garbage) and were skipped

    def by_state(self, *states: RunState) -> list[Run]:
        """The runs in any of ``states``, in creation order."""
        return [r for r in self.runs.values() if r.state in states]

    def job_ids(self) -> list[str]:
        """Every Slurm job id the sweep knows: recorded jobs first (in the order they were
        recorded), then the jobs its runs and agents named (``<array>_<task>`` for arrays)."""
        ids: dict[str, None] = dict.fromkeys(
            sorted(self.jobs, key=lambda j: float(self.jobs[j].get("first_t", 0.0)))
        )
        for run in self.runs.values():
            if run.job:
                ids[run.job] = None
        for agent in self.agents.values():
            if agent.job:
                ids[agent.job] = None
        return list(ids)


def result_applies(run: Run, attempt: int, state: RunState) -> bool:
    """Whether a result (``state`` reported for ``attempt``) may change ``run``.

    A terminal run never changes again (the first terminal result wins). A result for the
    current attempt applies. A result for an older attempt applies only if it is ``finished``:
    a run declared lost while its first agent was in fact still working, and then finished, keeps
    that real result even if another agent is re-running it. Anything else is a duplicate.
    """
    if run.state.is_terminal or attempt > run.attempt or attempt < 1:
        return False
    if attempt == run.attempt:
        return True
    return state is RunState.FINISHED


class FoldState:
    """The mutable state a reader or a transaction folds events into."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}
        self.cancelled = False
        self.cancel_reason: str | None = None
        self.agents: dict[str, AgentInfo] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.next_seq = 0
        self.created_at: float | None = None
        self.n_events = 0
        self.n_skipped = 0

    def copy(self) -> FoldState:
        """A copy that can be changed without changing this one (runs are immutable records)."""
        new = FoldState()
        new.runs = dict(self.runs)
        new.cancelled, new.cancel_reason = self.cancelled, self.cancel_reason
        new.agents = dict(self.agents)
        new.jobs = {k: dict(v) for k, v in self.jobs.items()}
        new.next_seq, new.created_at = self.next_seq, self.created_at
        new.n_events, new.n_skipped = self.n_events, self.n_skipped
        return new

    def snapshot(self) -> Snapshot:
        """A read-only :class:`Snapshot` of this state (copied, so later events do not show)."""
        return Snapshot(
            runs=dict(self.runs),
            cancelled=self.cancelled,
            cancel_reason=self.cancel_reason,
            agents=dict(self.agents),
            jobs={k: dict(v) for k, v in self.jobs.items()},
            next_seq=self.next_seq,
            created_at=self.created_at,
            n_events=self.n_events,
            n_skipped=self.n_skipped,
        )

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Fold one event in; False if it was ignored (a duplicate, malformed or unknown)."""
        handler = _HANDLERS.get(str(event.get("e")))
        try:
            applied = handler is not None and handler(self, event)
        except (KeyError, TypeError, ValueError):  # a valid JSON line with wrong fields
            self.n_skipped += 1
            return False
        if applied:
            self.n_events += 1
        return applied


def _evolve(run: Run, **changes: Any) -> Run:
    """``dataclasses.replace`` for the hot path: a copy of ``run`` with ``changes`` (3x faster)."""
    new = object.__new__(Run)
    new.__dict__.update(run.__dict__)
    new.__dict__.update(changes)
    return new


def parse_range(value: Any) -> tuple[float, float] | None:
    """A journal's ``[low, high]`` metric range; a malformed one raises ValueError/TypeError."""
    if value is None:
        return None
    low, high = (float(x) for x in value)
    return low, high


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _on_created(state: FoldState, ev: Mapping[str, Any]) -> bool:
    if state.created_at is None:
        state.created_at = float(ev["t"])
    return True


def run_from_claim(ev: Mapping[str, Any]) -> Run:
    """The new run a first ``claim`` event (attempt 1) creates."""
    params = ev["params"]
    if not isinstance(params, dict):
        raise TypeError("params must be an object")
    t = float(ev["t"])
    return Run(
        id=str(ev["run"]),
        params=params,
        state=RunState.RUNNING,
        attempt=1,
        seq=int(ev["seq"]),
        agent=_opt_str(ev.get("agent")),
        node=_opt_str(ev.get("node")),
        gpus=_opt_str(ev.get("gpus")),
        job=_opt_str(ev.get("job")),
        created_at=t,
        started_at=t,
    )


def _on_claim(state: FoldState, ev: Mapping[str, Any]) -> bool:
    run_id, attempt = str(ev["run"]), int(ev["attempt"])
    run = state.runs.get(run_id)
    if attempt == 1:
        if run is not None:
            return False  # the first claim of a run id wins
        new = run_from_claim(ev)
        state.runs[run_id] = new
        state.next_seq = max(state.next_seq, new.seq + 1)
        return True
    t = float(ev["t"])
    agent, node = _opt_str(ev.get("agent")), _opt_str(ev.get("node"))
    gpus, job = _opt_str(ev.get("gpus")), _opt_str(ev.get("job"))
    if run is None or not run.state.is_rerunnable or attempt != run.attempt + 1:
        return False
    state.runs[run_id] = _evolve(
        run,
        state=RunState.RUNNING,
        attempt=attempt,
        started_at=t,
        ended_at=None,
        exit_code=None,
        reason=None,
        agent=agent,
        node=node,
        gpus=gpus,
        job=job,
    )
    return True


def _on_end(state: FoldState, ev: Mapping[str, Any]) -> bool:
    run = state.runs.get(str(ev["run"]))
    result_state = RunState(ev["state"])
    if result_state is RunState.RUNNING or run is None:
        return False
    if not result_applies(run, int(ev["attempt"]), result_state):
        return False
    metric = ev.get("metric")
    metric_range = parse_range(ev.get("range"))
    last = ev.get("last")
    summary = ev.get("summary")
    exit_code = ev.get("exit_code")
    timed_out = result_state is RunState.PREEMPTED and ev.get("timeout") is True
    state.runs[run.id] = _evolve(
        run,
        state=result_state,
        ended_at=float(ev["t"]),
        exit_code=None if exit_code is None else int(exit_code),
        metric=run.metric if metric is None else float(metric),
        metric_range=run.metric_range if metric_range is None else metric_range,
        metric_last=run.metric_last if last is None else float(last),
        summary=run.summary if summary is None else dict(summary),
        reason=_opt_str(ev.get("reason")),
        timeouts=run.timeouts + int(timed_out),
        result_attempt=int(ev["attempt"]),
    )
    return True


def _on_lost(state: FoldState, ev: Mapping[str, Any]) -> bool:
    run = state.runs.get(str(ev["run"]))
    if run is None or run.state is not RunState.RUNNING or int(ev["attempt"]) != run.attempt:
        return False
    state.runs[run.id] = _evolve(
        run,
        state=RunState.LOST,
        ended_at=float(ev["t"]),
        reason=_opt_str(ev.get("reason")),
        losses=run.losses + 1,
    )
    return True


def _on_cancel(state: FoldState, ev: Mapping[str, Any]) -> bool:
    if state.cancelled:
        return False
    state.cancelled = True
    state.cancel_reason = _opt_str(ev.get("reason"))
    return True


def _on_agent(state: FoldState, ev: Mapping[str, Any]) -> bool:
    agent_id, kind, t = str(ev["agent"]), str(ev["event"]), float(ev["t"])
    if kind not in ("start", "stop"):
        return False
    old = state.agents.get(agent_id) or AgentInfo(id=agent_id, state="running")
    pid, slots = ev.get("pid"), ev.get("slots")
    state.agents[agent_id] = AgentInfo(
        id=agent_id,
        state="running" if kind == "start" else "stopped",
        node=_opt_str(ev.get("node", old.node)),
        host=_opt_str(ev.get("host", old.host)),
        pid=old.pid if pid is None else int(pid),
        job=_opt_str(ev.get("job", old.job)),
        slots=old.slots if slots is None else int(slots),
        started_at=t if kind == "start" else old.started_at,
        stopped_at=t if kind == "stop" else None,
    )
    return True


def _on_reply(state: FoldState, ev: Mapping[str, Any]) -> bool:
    return isinstance(ev.get("req"), str)  # an answer to a claim request; changes nothing


def _on_job(state: FoldState, ev: Mapping[str, Any]) -> bool:
    job_id = str(ev["job"])
    info = state.jobs.setdefault(job_id, {"first_t": float(ev["t"])})
    info.update({k: v for k, v in ev.items() if k not in ("e", "job")})
    return True


_HANDLERS = {
    "created": _on_created,
    "claim": _on_claim,
    "end": _on_end,
    "lost": _on_lost,
    "cancel": _on_cancel,
    "agent": _on_agent,
    "job": _on_job,
    "reply": _on_reply,
}
