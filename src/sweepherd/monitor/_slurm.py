"""The Slurm jobs of a sweep and their states: the journal's record joined with ``squeue``.

Which jobs belong to a sweep comes from the sweep itself, never from guessing by job name:
the ``job`` events of the journal (:attr:`Snapshot.jobs`, written when a job is submitted or
scaled) and the job each run and agent recorded (``$SLURM_JOB_ID``, or ``<array>_<task>``).
Their states come from a query function (``sweepherd.launch.slurm.squeue_jobs`` in the CLI),
injected so that this module never runs Slurm's commands itself (``launch.slurm`` is the one
module that does) and the view works, saying so, where Slurm is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sweepherd.errors import SweepherdError
from sweepherd.runs import RunState
from sweepherd.store import Snapshot


class JobStateLike(Protocol):
    """What the view needs of a ``squeue`` row (``sweepherd.launch.slurm.JobState``)."""

    @property
    def job_id(self) -> str: ...
    @property
    def raw_job_id(self) -> str: ...
    @property
    def array_job_id(self) -> str | None: ...
    @property
    def state(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def nodes(self) -> str | None: ...


#: ``query(job_ids) -> rows`` for the jobs Slurm still knows; raises SweepherdError on failure.
JobQuery = Callable[[Sequence[str]], Sequence[JobStateLike]]


@dataclass(frozen=True)
class SlurmJobRow:
    """One job (or array task) of the sweep."""

    job_id: str
    state: str  # Slurm's state, or "?" when Slurm could not be asked / no longer knows the job
    nodes: str | None = None
    reason: str | None = None
    n_running: int = 0  # runs of the sweep running in this job now
    recorded: Mapping[str, Any] = field(default_factory=dict)  # what the journal recorded


@dataclass(frozen=True)
class SlurmPanel:
    """The Slurm part of the live view: job rows, and a note when there is something to say."""

    rows: tuple[SlurmJobRow, ...] = ()
    note: str | None = None  # "no Slurm jobs recorded", "Slurm is not available here: ..."
    available: bool = True  # False when the query failed (no squeue, no controller)


def sweep_job_ids(snapshot: Snapshot) -> list[str]:
    """The Slurm job ids the sweep knows: recorded jobs, then its runs' and agents' jobs."""
    ids: dict[str, None] = {}
    for job_id in snapshot.jobs:
        ids[str(job_id)] = None
    for run in snapshot.runs.values():
        if run.job:
            ids[run.job] = None
    for agent in snapshot.agents.values():
        if agent.job:
            ids[agent.job] = None
    return list(ids)


def _belongs(row: JobStateLike, job_id: str) -> bool:
    return job_id in (row.job_id, row.raw_job_id, row.array_job_id)


def join_jobs(
    snapshot: Snapshot, job_ids: Iterable[str], states: Sequence[JobStateLike] | None
) -> tuple[SlurmJobRow, ...]:
    """One row per job or array task: Slurm's view (``states``) joined with the journal's.

    An array id expands to its tasks as squeue lists them; an id Slurm no longer lists keeps a
    row with state ``"?"`` (it ended and left Slurm's memory, or Slurm was not asked).
    """
    running: dict[str, int] = {}
    for run in snapshot.runs.values():
        if run.state is RunState.RUNNING and run.job:
            running[run.job] = running.get(run.job, 0) + 1
    ids = list(job_ids)
    rows: dict[str, SlurmJobRow] = {}
    for s in states or ():
        if s.job_id in rows or not any(_belongs(s, job_id) for job_id in ids):
            continue
        names = {s.job_id, s.raw_job_id}
        recorded = next(
            (
                snapshot.jobs[k]
                for k in (s.job_id, s.array_job_id, s.raw_job_id)
                if k is not None and k in snapshot.jobs
            ),
            {},
        )
        rows[s.job_id] = SlurmJobRow(
            s.job_id,
            s.state,
            nodes=s.nodes,
            reason=s.reason,
            n_running=sum(running.get(name, 0) for name in names),
            recorded=dict(recorded),
        )
    for job_id in ids:
        if job_id in rows or any(_belongs(s, job_id) for s in states or ()):
            continue
        rows[job_id] = SlurmJobRow(
            job_id,
            "?",
            n_running=running.get(job_id, 0),
            recorded=dict(snapshot.jobs.get(job_id, {})),
        )
    return tuple(rows.values())


@dataclass(frozen=True)
class SlurmReading:
    """What Slurm said about a set of jobs: its rows, or why it could not be asked."""

    states: tuple[JobStateLike, ...] | None = None  # None: Slurm was not asked or failed
    note: str | None = None
    available: bool = True


def ask_slurm(job_ids: Sequence[str], query: JobQuery | None) -> SlurmReading:
    """Ask ``query`` about ``job_ids``; a failure (no squeue, no controller) becomes a note."""
    if not job_ids:
        return SlurmReading(note="no Slurm jobs recorded for this sweep")
    if query is None:
        return SlurmReading(note="Slurm was not asked")
    try:
        return SlurmReading(tuple(query(job_ids)))
    except SweepherdError as exc:
        return SlurmReading(note=f"Slurm is not available here: {exc.message}", available=False)


def slurm_panel(snapshot: Snapshot, reading: SlurmReading | JobQuery | None) -> SlurmPanel:
    """The sweep's jobs joined with a Slurm reading (or a query to make one now)."""
    job_ids = sweep_job_ids(snapshot)
    if not isinstance(reading, SlurmReading):
        reading = ask_slurm(job_ids, reading)
    rows = join_jobs(snapshot, job_ids, reading.states) if job_ids else ()
    return SlurmPanel(rows, reading.note, reading.available)
