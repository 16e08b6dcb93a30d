"""Claiming the next run: the one decision every agent makes, taken atomically under the lock.

:func:`claim_next` posts a claim request (see :meth:`sweepherd.store.SweepStore.request_claim`):
whichever agent holds the journal lock next serves every waiting request at once, in ONE
transaction, so two agents never get the same run or the same new point, and a burst of
hundreds of agents costs a few lock holds instead of hundreds. Serving a batch:

1. record the results each request reports (an agent reports its finished runs and asks for the
   next one in the same call: half the lock traffic of doing both apart);
2. if the sweep is cancelled: no run for anyone;
3. declare lost every run held by an agent that is silent: it recorded a clean stop after
   claiming the run, or the run is older than ``lost_grace_s`` and so is the agent's last
   heartbeat (agents asking in this batch are alive by definition);
4. give each request a preempted run if there is one, else a lost one (same id, next attempt)
   that was lost fewer than :data:`~sweepherd.runs.MAX_LOSSES` times;
5. for the rest, unless :func:`sweepherd.search.done_reason` gives a reason (run cap, metric
   target): ask :func:`sweepherd.search.suggest` for new points (never past the run cap), with
   ``numpy.random.default_rng([sweep seed, seq of the first new run])``; requests left without
   a point get no run (a grid whose every point is taken) and the reason. With bayes and
   ``metric.impute_while_running``, running runs carry their metric so far (their agents'
   ``live.json``).

A suggestion may be slow (bayes's GP phase takes about a second a point), and the lock must
not be held for long: past its stale time other agents would break it, the holder's write
would be refused, and the same batch would be computed again and again. So the holder makes
one point, and asks for the rest in one call only if that fits in :data:`SUGGEST_BUDGET_S`;
otherwise it makes points one at a time until the budget is spent and tells the remaining
requesters :data:`BUSY`, to which they answer by asking again.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from numpy.random import default_rng  # eagerly: a lazy import would cost the holder 10 ms

from sweepherd.config import SweepConfig
from sweepherd.live_metric import read_running
from sweepherd.runs import Run, RunState
from sweepherd.search import done_reason, suggest, warm_up
from sweepherd.store import (
    DEFAULT_TIMEOUT_S,
    AgentInfo,
    ClaimRequest,
    Heartbeat,
    RunResult,
    SweepStore,
    Transaction,
)

#: Why there is no run when the grid's every point is taken.
EXHAUSTED = "every point of the grid has been run or is running"

#: The reason given to requests the holder had no time left for: ask again.
BUSY = "the sweep's search is busy; ask again"

#: Seconds of suggesting one lock hold may spend (well below the lock's stale time).
SUGGEST_BUDGET_S = 5.0


@dataclass(frozen=True)
class Claim:
    """What :func:`claim_next` got: a run to start, or why there is none."""

    run: Run | None  # the run to start now (attempt > 1: a resumed run), or None
    reason: str | None = None  # when ``run`` is None: why (cancelled, run cap, grid exhausted...)
    recorded: tuple[bool, ...] = ()  # for each result passed in: True if it was written
    #: When ``run`` is None: how many runs other agents still hold (if those agents die, their
    #: runs come back to be run again, so an agent may want to wait). 0 when ``run`` is set.
    n_running: int = 0

    @property
    def retry(self) -> bool:
        """True when the holder had no time left for this request: ask again soon."""
        return self.run is None and self.reason == BUSY


def claim_next(
    store: SweepStore,
    *,
    agent_id: str,
    node: str | None = None,
    gpus: str | None = None,
    job: str | None = None,
    lost_grace_s: float = 60.0,
    results: Sequence[RunResult] = (),
    seed: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Claim:
    """Record ``results``, then claim the next run for ``agent_id`` (see the module doc).

    ``seed`` defaults to the sweep's seed from meta.json. Raises
    :class:`~sweepherd.errors.LockTimeoutError` (no answer in time; the request was withdrawn,
    nothing was written for it) or :class:`~sweepherd.errors.StoreError` (a full disk; nothing
    written): the call may be retried with the same results.
    """
    config = store.config
    base_seed = store.seed if seed is None else seed
    warm_up(config)  # imports (torch...) before the lock, never under it
    request = ClaimRequest(
        token=secrets.token_hex(8),
        agent=agent_id,
        node=node,
        gpus=gpus,
        job=job,
        results=tuple(results),
        t=time.time(),
    )

    def serve(txn: Transaction, requests: list[ClaimRequest]) -> None:
        serve_claims(txn, requests, store, config, base_seed, lost_grace_s)

    answer = store.request_claim(request, serve, timeout_s)
    ends = [(e["run"], e["attempt"]) for e in answer.events if e["e"] == "end"]
    recorded = []
    for result in results:  # each result written is one end event, in the same order
        key = (result.run_id, result.attempt)
        recorded.append(key in ends)
        if key in ends:
            ends.remove(key)
    if answer.run is not None:
        return Claim(answer.run, None, tuple(recorded))
    reply = answer.reply or {}
    return Claim(None, answer.reason, tuple(recorded), int(reply.get("n_running", 0)))


def serve_claims(
    txn: Transaction,
    requests: list[ClaimRequest],
    store: SweepStore,
    config: SweepConfig,
    seed: int,
    lost_grace_s: float,
) -> None:
    """Answer every request in ``requests`` inside ``txn`` (steps 1-5 of the module doc)."""
    for request in requests:
        for result in request.results:
            txn.record(result, req=request.token)
    snap = txn.snapshot
    if snap.cancelled:
        why = f": {snap.cancel_reason}" if snap.cancel_reason else ""
        _reply_all(txn, requests, f"the sweep was cancelled{why}")
        return
    _mark_lost(txn, store, {r.agent for r in requests}, lost_grace_s)
    snap = txn.snapshot
    again = [
        r
        for r in snap.by_state(RunState.PREEMPTED) + snap.by_state(RunState.LOST)
        if r.will_run_again
    ]
    wanting_new = []
    for request in requests:
        if again:
            run = again.pop(0)
            txn.claim_again(run.id, request.agent, **_where(request))
        else:
            wanting_new.append(request)
    if not wanting_new:
        return
    runs = list(txn.snapshot.runs.values())
    reason = done_reason(config, runs)
    live = _live_ranges(store, config, runs)
    n = len(wanting_new)
    if config.run_cap is not None:
        n = min(n, config.run_cap - len(runs))
    served = 0
    started = time.monotonic()
    while reason is None and served < n:
        # One point first; the rest in one call when the first shows they fit in the budget.
        elapsed = time.monotonic() - started
        if served and elapsed > SUGGEST_BUDGET_S:
            _reply_all(txn, wanting_new[served:], BUSY)
            return
        per_point = elapsed / served if served else 0.0
        batch = 1 if not served or per_point * (n - served) > SUGGEST_BUDGET_S else n - served
        runs = [_with_range(r, live) for r in txn.snapshot.runs.values()]
        points = suggest(config, runs, batch, default_rng([seed, txn.snapshot.next_seq]))
        for request, params in zip(wanting_new[served:], points, strict=False):
            txn.claim_new(params, request.agent, **_where(request))
        served += len(points)
        if len(points) < batch:
            break  # the method has nothing left (a grid whose every point is taken)
    rest = wanting_new[served:]
    if rest:
        reason = reason or done_reason(config, list(txn.snapshot.runs.values())) or EXHAUSTED
        _reply_all(txn, rest, reason)


def _live_ranges(
    store: SweepStore, config: SweepConfig, runs: Sequence[Run]
) -> dict[str, tuple[float, float]]:
    """The metric's range so far of each running run, from the live file its agent publishes,
    when the search uses it: bayes with ``metric.impute_while_running`` (W&B's bayes then learns
    from a running run's best value so far). Unreadable files count as nothing logged yet."""
    metric = config.metric
    if config.method != "bayes" or metric is None or metric.impute_while_running is None:
        return {}
    views = read_running(runs, store.run_path, metric.name)
    return {run_id: found for run_id, live in views.items() if (found := live.range) is not None}


def _with_range(run: Run, ranges: dict[str, tuple[float, float]]) -> Run:
    found = ranges.get(run.id)
    return run if found is None else dataclasses.replace(run, metric_range=found)


def _reply_all(txn: Transaction, requests: Sequence[ClaimRequest], reason: str) -> None:
    """Answer each request with no run, telling it how many runs other agents still hold."""
    running = [r.agent for r in txn.snapshot.by_state(RunState.RUNNING)]
    for request in requests:
        n_running = sum(1 for agent in running if agent != request.agent)
        txn.reply(request.token, reason, n_running=n_running)


def _where(request: ClaimRequest) -> dict[str, Any]:
    return {"node": request.node, "gpus": request.gpus, "job": request.job, "req": request.token}


def _mark_lost(txn: Transaction, store: SweepStore, alive: set[str], grace_s: float) -> None:
    """Declare lost the running runs of silent agents (reading only the heartbeats needed)."""
    snap = txn.snapshot
    now = time.time()
    suspects = []
    for run in snap.by_state(RunState.RUNNING):
        if run.agent in alive:
            continue
        agent = snap.agents.get(run.agent or "")
        stopped = agent is not None and agent.state == "stopped"
        if stopped or now - (run.started_at or 0.0) > grace_s:
            suspects.append(run)
    beats: dict[str, Heartbeat | None] = {}
    for run in suspects:
        name = run.agent or ""
        if name and name not in beats:
            beats[name] = store.read_heartbeat(name)
        why = silent(run, snap.agents.get(name), beats.get(name), now, grace_s)
        if why:
            txn.mark_lost(run.id, why)


def silent(
    run: Run,
    agent: AgentInfo | None,
    beat: Heartbeat | None,
    now: float,
    grace_s: float,
) -> str | None:
    """Why ``run``'s agent must be taken for gone, or None if it may still be working on it."""
    started = run.started_at or 0.0
    name = run.agent or "?"
    if agent is not None and agent.state == "stopped" and (agent.stopped_at or 0.0) >= started:
        return f"its agent {name} stopped without reporting it"
    if beat is not None and beat.state == "exited" and beat.t >= started:
        return f"its agent {name} exited without reporting it"
    last = max(beat.t if beat is not None else 0.0, started)
    if now - last > grace_s:
        return f"its agent {name} was silent for {now - last:.0f} s (grace {grace_s:g} s)"
    return None
