"""The Slurm part of the live view: the sweep's jobs, their states, and its runs on each.

Which jobs belong to a sweep, and their states, come from
:func:`sweepherd.launch.slurm.sweep_jobs` (the journal's recorded jobs and the jobs runs and
agents recorded, joined with one ``squeue`` call). It is injected as a reader so that this
module never runs Slurm's commands (``launch.slurm`` is the one module that does) and so that
the view works, and says so, where Slurm is absent. Here the jobs are joined with the runs in
flight (by ``Run.job``, which names a job as ``SweepJob.job`` does) and failures become a
note instead of an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sweepherd.errors import SweepherdError
from sweepherd.runs import RunState
from sweepherd.store import Snapshot


class SweepJobLike(Protocol):
    """What the view needs of a job row (``sweepherd.launch.slurm.SweepJob``)."""

    @property
    def job(self) -> str: ...
    @property
    def state(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def nodes(self) -> str | None: ...
    @property
    def kind(self) -> str | None: ...
    @property
    def restarts(self) -> int: ...


#: ``read(snapshot) -> job rows`` (``sweep_jobs``); raises SweepherdError when Slurm fails.
JobsReader = Callable[[Snapshot], Sequence[SweepJobLike]]


@dataclass(frozen=True)
class SlurmJobRow:
    """One job (or array task) of the sweep, with the sweep's runs running in it."""

    job_id: str
    state: str  # Slurm's state; "ENDED" once Slurm forgot it; "?" when Slurm could not be asked
    nodes: str | None = None
    reason: str | None = None
    kind: str | None = None  # "submit" or "scale" as the journal recorded it
    n_running: int = 0
    restarts: int = 0  # times Slurm requeued it


@dataclass(frozen=True)
class SlurmReading:
    """What one reading of Slurm gave: the job rows, or why there are none."""

    jobs: tuple[SweepJobLike, ...] = ()
    note: str | None = None
    available: bool = True  # False when Slurm could not be asked (no squeue, no controller)


@dataclass(frozen=True)
class SlurmPanel:
    """The Slurm part of a frame: job rows, and a note when there is something to say."""

    rows: tuple[SlurmJobRow, ...] = ()
    note: str | None = None  # "no Slurm jobs recorded...", "Slurm is not available here: ..."
    available: bool = True


def read_slurm(snapshot: Snapshot, reader: JobsReader | None) -> SlurmReading:
    """Read the sweep's jobs with ``reader``; a failure becomes a note, never an error."""
    if not snapshot.job_ids():
        return SlurmReading(note="no Slurm jobs recorded for this sweep")
    if reader is None:
        return SlurmReading(note="Slurm was not asked")
    try:
        return SlurmReading(tuple(reader(snapshot)))
    except SweepherdError as exc:
        return SlurmReading(note=f"Slurm is not available here: {exc.message}", available=False)


def slurm_panel(snapshot: Snapshot, reading: SlurmReading) -> SlurmPanel:
    """The reading's jobs with the number of the sweep's runs running in each (from
    ``snapshot``, which may be newer than the reading); without a reading, the known ids."""
    running: dict[str, int] = {}
    for run in snapshot.runs.values():
        if run.state is RunState.RUNNING and run.job:
            running[run.job] = running.get(run.job, 0) + 1
    if reading.jobs:
        rows = tuple(
            SlurmJobRow(
                job.job,
                job.state or "ENDED",
                job.nodes,
                job.reason,
                job.kind,
                running.get(job.job, 0),
                job.restarts,
            )
            for job in reading.jobs
        )
    else:
        rows = tuple(
            SlurmJobRow(job_id, "?", n_running=running.get(job_id, 0))
            for job_id in (snapshot.job_ids() if not reading.available else ())
        )
    return SlurmPanel(rows, reading.note, reading.available)
