"""The Slurm jobs of a sweep and their states now: :func:`sweep_jobs`.

Which jobs belong to a sweep comes from the sweep itself, never from guessing by job name: the
jobs ``sweepherd submit`` and ``scale`` recorded in the journal, and the job each run and agent
recorded (``$SLURM_JOB_ID``, or ``<array id>_<task id>`` for an array task, as
:func:`~sweepherd.launch.slurm.job_reference` names it). Their states come from one ``squeue``
call; an array expands to its tasks. :attr:`SweepJob.job` is named as :attr:`Run.job
<sweepherd.runs.Run.job>` is, so runs join to their job by that name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sweepherd.launch.slurm._commands import TERMINAL_STATES, JobState, squeue_jobs
from sweepherd.store import Snapshot, SweepStore

#: ``query(job_ids) -> rows`` for the jobs Slurm still knows (:func:`squeue_jobs`).
JobQuery = Callable[[Sequence[str]], Sequence[JobState]]


@dataclass(frozen=True)
class SweepJob:
    """One job, array task, or pending range of array tasks of a sweep."""

    job: str  # "12", "10_3" (as Run.job names it), or "10_[4-7]" for tasks not started yet
    state: str | None  # Slurm's state (RUNNING, PENDING, COMPLETED...); None: Slurm forgot it
    reason: str | None = None  # why it is pending or how it ended ("BeginTime", "NonZeroExitCode")
    nodes: str | None = None  # compressed node list ("node[1-2]")
    exit_code: int | None = None  # the batch script's exit status, once it has one
    signal: int | None = None  # the signal that killed it, if one did
    restarts: int = 0  # times it was requeued (its SLURM_RESTART_COUNT)
    kind: str | None = None  # "submit" or "scale" as recorded; None: known only from runs/agents
    recorded_as: str | None = None  # the id it was recorded under ("10" for task "10_3")

    @property
    def is_terminal(self) -> bool:
        """True when it has ended (or Slurm no longer knows it, which it only does once ended)."""
        return self.state is None or self.state in TERMINAL_STATES


def sweep_jobs(store: SweepStore | Snapshot, *, query: JobQuery = squeue_jobs) -> list[SweepJob]:
    """The state of every Slurm job of the sweep, from one ``squeue`` call.

    One row per plain job and per array task (plus one for an array's tasks still pending as
    a range), in the order the jobs were recorded. A job Slurm has forgotten (ended more than
    ``MinJobAge`` ago) keeps a row with ``state=None``. No jobs recorded: ``[]`` without
    asking Slurm. Raises :class:`~sweepherd.errors.SlurmError` when squeue is missing or the
    controller does not answer.
    """
    snapshot = store.snapshot() if isinstance(store, SweepStore) else store
    ids = snapshot.job_ids()
    if not ids:
        return []
    rows = list(query(ids))
    out: dict[str, SweepJob] = {}
    for job_id in ids:
        found = False
        for row in rows:
            if job_id not in (row.job_id, row.raw_job_id, row.array_job_id):
                continue
            found = True
            if row.job_id in out:
                continue
            recorded = _recorded_id(snapshot, row)
            info = snapshot.jobs.get(recorded or "", {})
            out[row.job_id] = SweepJob(
                job=row.job_id,
                state=row.state,
                reason=row.reason,
                nodes=row.nodes,
                exit_code=row.exit_code,
                signal=row.signal,
                restarts=row.restarts,
                kind=_str_or_none(info.get("kind")),
                recorded_as=recorded,
            )
        if not found and job_id not in out:
            info = snapshot.jobs.get(job_id, {})
            out[job_id] = SweepJob(
                job=job_id,
                state=None,
                kind=_str_or_none(info.get("kind")),
                recorded_as=job_id if job_id in snapshot.jobs else None,
            )
    return list(out.values())


def _recorded_id(snapshot: Snapshot, row: JobState) -> str | None:
    for key in (row.job_id, row.array_job_id, row.raw_job_id):
        if key is not None and key in snapshot.jobs:
            return key
    return None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
