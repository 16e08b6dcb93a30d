"""Gathering the live view's model from a sweep directory, reading only what changed.

:class:`WatchCollector` keeps its readers between frames:

- the journal is ``stat``-ed each frame and read (incrementally, by the store) only when its
  size or mtime changed;
- each running run's metrics (``metrics.jsonl``, its wandb log) are followed by byte offset,
  stat before read (:mod:`sweepherd.monitor._follow`); a run's followers are dropped when it
  ends (its result is in the journal);
- a failed run's stderr tail is read once (a failed run never writes again);
- agent heartbeats are read at most every ``heartbeat_every_s`` and only when the ``agents/``
  folder changed; Slurm is asked at most every ``slurm_every_s`` (and at once when the sweep
  records a new job), never when the sweep has no job.

Every file access is counted in :attr:`WatchCollector.stats`.
"""

from __future__ import annotations

import time

from sweepherd.monitor._follow import ChangeWatcher, IoStats, tail_lines
from sweepherd.monitor._history import RunMetricFollower
from sweepherd.monitor._model import Failure, InFlight, WatchModel
from sweepherd.monitor._slurm import (
    JobsReader,
    SlurmPanel,
    SlurmReading,
    read_slurm,
    slurm_panel,
)
from sweepherd.monitor._stalled import SILENT_AFTER_S, n_alive, stalled_note
from sweepherd.monitor._summary import (
    best_runs,
    eta_s,
    failed_runs,
    progress,
    sweep_state,
    throughput_per_min,
    why_failed,
)
from sweepherd.runs import Run, RunState
from sweepherd.store import Heartbeat, Snapshot, SweepStore

#: Lines of stderr shown under each failure.
STDERR_LINES = 3


class WatchCollector:
    """Builds a :class:`WatchModel` per :meth:`collect` call from one sweep.

    Args:
        store: the sweep (opened read-only: the collector never takes the journal lock).
        slurm_jobs: reads the sweep's Slurm jobs (``sweepherd.launch.slurm.sweep_jobs``);
            None leaves Slurm out.
        slurm_every_s: least seconds between two Slurm queries.
        heartbeat_every_s: least seconds between two readings of the agents' heartbeats.
        n_best, n_failures: how many best runs and failures a frame carries.
    """

    def __init__(
        self,
        store: SweepStore,
        *,
        slurm_jobs: JobsReader | None = None,
        slurm_every_s: float = 15.0,
        heartbeat_every_s: float = 10.0,
        n_best: int = 5,
        n_failures: int = 3,
    ) -> None:
        self.store = store
        self.slurm_jobs = slurm_jobs
        self.slurm_every_s = slurm_every_s
        self.heartbeat_every_s = heartbeat_every_s
        self.n_best = n_best
        self.n_failures = n_failures
        self.stats = IoStats()
        self.n_journal_reads = 0
        self.n_slurm_queries = 0
        self._journal = ChangeWatcher(store.journal_path, self.stats)
        self._snapshot: Snapshot | None = None
        self._followers: dict[str, RunMetricFollower] = {}
        self._stderr: dict[tuple[str, int], tuple[str, ...]] = {}
        self._agents_mtime: int | None = None
        self._heartbeats: dict[str, Heartbeat] | None = None
        self._heartbeats_t = -float("inf")
        self._slurm = SlurmReading()
        self._slurm_t = -float("inf")
        self._slurm_ids: list[str] = []
        self._ended_seen: set[str] | None = None
        self._note = _backend_note(store)

    def collect(self, now: float | None = None) -> WatchModel:
        """Read what changed and return the frame's model (``now``: unix time, for tests)."""
        now = time.time() if now is None else now
        snap = self._read_journal()
        config = self.store.config
        runs = list(snap.runs.values())
        prog = progress(config, runs)
        rate = throughput_per_min(runs, now)
        beats = self._read_heartbeats(now)
        metric = config.metric.name if config.metric else None
        failed = failed_runs(runs)
        failed.sort(key=lambda r: (r.ended_at or 0.0, r.seq), reverse=True)
        state = sweep_state(config, runs, snap.cancelled)
        slurm = self._read_slurm(snap, now)
        alive = self._n_alive(beats, now)
        return WatchModel(
            sweep_id=self.store.sweep_id,
            name=config.name,
            method=config.method,
            metric=metric,
            goal=config.metric.goal if config.metric else None,
            state=state,
            progress=prog,
            now=now,
            runs_per_min=rate,
            eta_s=eta_s(prog, rate),
            running=self._in_flight(runs, metric, beats, now),
            best=tuple(best_runs(config, runs, self.n_best)),
            failures=tuple(self._failure(r) for r in failed[: self.n_failures]),
            n_failed=len(failed),
            slurm=slurm,
            n_agents_alive=alive,
            ended=self._newly_ended(runs),
            note=self._note,
            stalled=stalled_note(
                state,
                prog.n_running,
                alive,
                (row.state for row in slurm.rows),
                str(self.store.path),
            ),
        )

    # -- the journal ---------------------------------------------------------------------------

    def _read_journal(self) -> Snapshot:
        changed = self._journal.changed()  # always: it remembers what it saw
        if self._snapshot is None or changed:
            self._snapshot = self.store.snapshot()
            self.n_journal_reads += 1
        return self._snapshot

    # -- runs in flight --------------------------------------------------------------------------

    def _in_flight(
        self, runs: list[Run], metric: str | None, beats: dict[str, Heartbeat] | None, now: float
    ) -> tuple[InFlight, ...]:
        running = [r for r in runs if r.state is RunState.RUNNING]
        live = {r.id for r in running}
        for run_id in [k for k in self._followers if k not in live]:
            del self._followers[run_id]
        rows = []
        for run in running:
            follower = self._followers.get(run.id)
            if follower is None:
                run_dir = self.store.runs_dir / run.id
                follower = RunMetricFollower(run_dir, run.id, metric, self.stats)
                self._followers[run.id] = follower
            follower.poll()
            silent: float | None = None
            beat = beats.get(run.agent) if beats is not None and run.agent else None
            if beat is not None and (beat.state != "running" or beat.age_s(now) > SILENT_AFTER_S):
                silent = max(0.0, beat.age_s(now))
            rows.append(
                InFlight(
                    run_id=run.id,
                    node=run.node,
                    gpus=run.gpus,
                    attempt=run.attempt,
                    elapsed_s=None if run.started_at is None else max(0.0, now - run.started_at),
                    latest=follower.latest,
                    n_logged=follower.n_rows,
                    agent_silent_s=silent,
                )
            )
        return tuple(rows)

    # -- failures -------------------------------------------------------------------------------

    def _failure(self, run: Run) -> Failure:
        key = (run.id, run.attempt)
        tail = self._stderr.get(key)
        if tail is None:
            path = self.store.runs_dir / run.id / "stderr.log"
            tail = tuple(tail_lines(path, STDERR_LINES, self.stats))
            self._stderr[key] = tail
        return Failure(run.id, run.exit_code, why_failed(run), tail, run.node, run.ended_at)

    # -- heartbeats ------------------------------------------------------------------------------

    def _read_heartbeats(self, now: float) -> dict[str, Heartbeat] | None:
        if self._heartbeats is not None and now - self._heartbeats_t < self.heartbeat_every_s:
            return self._heartbeats
        self._heartbeats_t = now
        self.stats.n_stat += 1
        try:
            mtime = self.store.agents_dir.stat().st_mtime_ns
        except OSError:
            return self._heartbeats
        if self._heartbeats is None or mtime != self._agents_mtime:
            self._agents_mtime = mtime
            self._heartbeats = self.store.heartbeats()
            self.stats.n_open += len(self._heartbeats)
        return self._heartbeats

    @staticmethod
    def _n_alive(beats: dict[str, Heartbeat] | None, now: float) -> int | None:
        return None if beats is None else n_alive(beats, now)

    # -- Slurm -----------------------------------------------------------------------------------

    def _read_slurm(self, snap: Snapshot, now: float) -> SlurmPanel:
        ids = snap.job_ids()
        if ids != self._slurm_ids or now - self._slurm_t >= self.slurm_every_s:
            if ids and self.slurm_jobs is not None:
                self.n_slurm_queries += 1
            self._slurm = read_slurm(snap, self.slurm_jobs)
            self._slurm_t, self._slurm_ids = now, ids
        return slurm_panel(snap, self._slurm)  # joined every frame: run counts stay current

    # -- plain output ----------------------------------------------------------------------------

    def _newly_ended(self, runs: list[Run]) -> tuple[Run, ...]:
        ended = [r for r in runs if r.state is not RunState.RUNNING and r.ended_at is not None]
        if self._ended_seen is None:  # the first frame: everything so far is history
            self._ended_seen = {f"{r.id}/{r.attempt}" for r in ended}
            return ()
        new = [r for r in ended if f"{r.id}/{r.attempt}" not in self._ended_seen]
        self._ended_seen.update(f"{r.id}/{r.attempt}" for r in new)
        new.sort(key=lambda r: (r.ended_at or 0.0, r.seq))
        return tuple(new)


def _backend_note(store: SweepStore) -> str | None:
    """Where a ``--backend wandb`` sweep's runs are (its journal holds none of them)."""
    from sweepherd.wandb import describe

    return describe(store)
