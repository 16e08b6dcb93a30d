"""Claiming the next run: the one decision every agent makes, taken atomically under the lock.

:func:`claim_next` does, in ONE store transaction (so two agents never get the same run or the
same new point):

1. record the results passed in (an agent reports its finished runs and asks for the next one
   in the same lock hold: half the lock traffic of doing both apart);
2. if the sweep is cancelled: no run;
3. declare lost every run held by another agent that is silent (heartbeat older than
   ``lost_grace_s``, or that agent recorded its clean exit since it claimed the run);
4. start a preempted run again if there is one, else a lost one (same id, next attempt);
5. else, if :func:`sweepherd.search.done_reason` gives a reason (run cap, metric target): no run;
6. else ask :func:`sweepherd.search.suggest` for one point, with the random generator
   ``numpy.random.default_rng([sweep seed, seq])`` (so a sweep is reproducible run by run);
   nothing left (a grid whose every point is taken): no run;
7. else create the new run.

Heartbeats are read before the lock is taken, from a reading at most a few seconds old, so the
lock is held for microseconds of bookkeeping; a run that looks silent is confirmed with a fresh
read of its agent's heartbeat before it is declared lost.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sweepherd.runs import Run, RunState
from sweepherd.search import done_reason, suggest
from sweepherd.store import DEFAULT_TIMEOUT_S, AgentInfo, Heartbeat, RunResult, SweepStore


@dataclass(frozen=True)
class Claim:
    """What :func:`claim_next` got: a run to start, or why there is none."""

    run: Run | None  # the run to start now (attempt > 1: a resumed run), or None
    reason: str | None = None  # when ``run`` is None: why (cancelled, run cap, grid exhausted...)
    recorded: tuple[bool, ...] = ()  # for each result passed in: True if it was written
    lost: tuple[str, ...] = ()  # runs this call declared lost
    n_running: int = 0  # runs other agents still hold (they may come back if those agents die)


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
    :class:`~sweepherd.errors.LockTimeoutError` or :class:`~sweepherd.errors.StoreError` (a full
    disk); then nothing was written and the call may be retried.
    """
    config = store.config
    base_seed = store.seed if seed is None else seed
    beats = store.heartbeats(max_age_s=min(5.0, lost_grace_s / 4))
    with store.transaction(timeout_s, agent=agent_id) as txn:
        recorded = tuple(txn.record(result) for result in results)
        snap = txn.snapshot
        if snap.cancelled:
            why = f": {snap.cancel_reason}" if snap.cancel_reason else ""
            return Claim(None, f"the sweep was cancelled{why}", recorded)
        now = time.time()
        lost = []
        for run in snap.by_state(RunState.RUNNING):
            if run.agent == agent_id:
                continue
            agent = snap.agents.get(run.agent or "")
            why_lost = _silent(run, agent, beats.get(run.agent or ""), now, lost_grace_s)
            if why_lost and run.agent:
                # The cached reading may be seconds old: confirm with a fresh one.
                why_lost = _silent(run, agent, store.read_heartbeat(run.agent), now, lost_grace_s)
            if why_lost and txn.mark_lost(run.id, why_lost):
                lost.append(run.id)
        snap = txn.snapshot
        n_running = sum(1 for r in snap.by_state(RunState.RUNNING) if r.agent != agent_id)
        again = snap.by_state(RunState.PREEMPTED) or snap.by_state(RunState.LOST)
        if again:
            run = txn.claim_again(again[0].id, agent_id, node=node, gpus=gpus, job=job)
            return Claim(run, None, recorded, tuple(lost), n_running)
        runs = list(snap.runs.values())
        reason = done_reason(config, runs)
        if reason is not None:
            return Claim(None, reason, recorded, tuple(lost), n_running)
        rng = np.random.default_rng([base_seed, snap.next_seq])
        points = suggest(config, runs, 1, rng)
        if not points:
            why = "every point of the grid has been run or is running"
            return Claim(None, why, recorded, tuple(lost), n_running)
        run = txn.claim_new(points[0], agent_id, node=node, gpus=gpus, job=job)
        return Claim(run, None, recorded, tuple(lost), n_running)


def _silent(
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
