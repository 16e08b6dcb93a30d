"""Submitting a sweep's agents to Slurm, adding more, and cancelling them: :class:`SlurmLauncher`.

``sweepherd submit`` creates the sweep *before* anything reaches Slurm (no agent can start on
a sweep that does not exist yet), writes the sbatch script into ``<sweep>/slurm/``, submits it
with ``sbatch --parsable`` and records the job and its options in the sweep's journal, so that
``sweepherd scale`` can ask for more nodes with the same resources and ``sweepherd cancel``
knows which jobs to stop. What can be checked without Slurm (the config, the program, every
option) is checked before anything is created; when ``sbatch`` itself refuses the job, the
sweep it was meant for is removed again, so a mistyped partition leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweepherd.errors import ConfigError, LaunchError, SlurmError, SlurmTimeoutError, StoreError
from sweepherd.launch import load_with_overrides, prepare_sweep, resolve_workdir
from sweepherd.launch.slurm._commands import (
    DEFAULT_TIMEOUT_S,
    parse_sbatch_parsable,
    require_commands,
    run_slurm,
    scancel,
    slurm_error,
    squeue_jobs,
)
from sweepherd.launch.slurm._options import SbatchOptions
from sweepherd.launch.slurm._render import render_scale, render_submit
from sweepherd.runs import RunState
from sweepherd.store import Snapshot, SweepStore, new_sweep_id

log = logging.getLogger(__name__)

#: sbatch options of a submit job that a scale job does not repeat: they shape that job's set
#: of nodes, and each element of a scale array is one node of its own.
_SUBMIT_ONLY_ARGS = frozenset({"--nodelist", "--nodes", "--ntasks", "--ntasks-per-node", "--array"})

#: The ``kind`` of a job recorded by :meth:`SlurmLauncher.submit` and :meth:`SlurmLauncher.scale`.
SUBMIT, SCALE = "submit", "scale"
#: Name of the submit script in ``<sweep>/slurm/``; scale scripts are ``scale-<k>.sbatch``.
SUBMIT_SCRIPT = "submit.sbatch"
#: Seconds to wait for sbatch to answer before the submit is reported as uncertain.
SBATCH_TIMEOUT_S = DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class Submission:
    """A job submitted (or, for a dry run, only rendered) for a sweep."""

    script: str  # the sbatch script's text
    store: SweepStore | None = None  # the sweep; None for a dry run of submit
    script_path: Path | None = None  # where the script was written; None for a dry run
    job_id: str | None = None  # Slurm's id (an array's id for scale); None for a dry run
    n_nodes: int = 1
    options: SbatchOptions | None = None  # what the script was rendered from


@dataclass(frozen=True)
class CancelReport:
    """What :meth:`SlurmLauncher.cancel_jobs` did with the sweep's recorded jobs."""

    cancelled: tuple[str, ...] = ()  # jobs (or arrays) scancel was asked to stop
    ended: tuple[str, ...] = ()  # jobs that had already ended or that Slurm has forgotten
    unavailable: str | None = None  # why Slurm could not be asked (no scancel here), if so
    unavailable_jobs: tuple[str, ...] = ()  # the jobs left alone then


class SlurmLauncher:
    """Starts and stops the Slurm jobs that run one sweep's agents.

    :meth:`submit` creates a new sweep and submits it; the other methods act on an existing
    sweep (``SlurmLauncher(store)``).
    """

    def __init__(self, store: SweepStore) -> None:
        self.store = store

    # -- submit ---------------------------------------------------------------------------

    @staticmethod
    def preview_submit(
        config_path: Path,
        root: Path,
        settings: Mapping[str, Any],
        *,
        run_cap: int | None = None,
        name: str | None = None,
    ) -> Submission:
        """The submit script, after every check that needs no Slurm; creates nothing.

        The sweep directory in the script is ``<root>/<a new sweep id>``; a real submit picks
        its own id.
        """
        config = load_with_overrides(config_path, run_cap=run_cap, name=name)
        resolve_workdir(config, config_path)
        options = SbatchOptions(
            sweep_dir=Path(root).resolve() / new_sweep_id(), **_absolute_output(settings)
        )
        return Submission(render_submit(options), n_nodes=options.nodes, options=options)

    @classmethod
    def submit(
        cls,
        config_path: Path,
        root: Path,
        settings: Mapping[str, Any],
        *,
        run_cap: int | None = None,
        name: str | None = None,
    ) -> Submission:
        """Create the sweep, write its sbatch script to ``<sweep>/slurm/``, submit it, record it.

        ``settings`` are :class:`SbatchOptions` fields (all but ``sweep_dir``). Raises
        :class:`~sweepherd.errors.ConfigError` (config or options; nothing created) or
        :class:`~sweepherd.errors.SlurmError` (Slurm missing: nothing created; sbatch refused
        the job: the new sweep is removed again).
        """
        require_commands("sbatch")
        settings = _absolute_output(settings)  # a later `scale` may run from anywhere
        SbatchOptions(sweep_dir=Path(root).resolve() / "_", **settings)  # check before creating
        make_output_folder(settings.get("output"))
        store = prepare_sweep(config_path, root, run_cap=run_cap, name=name)
        options = SbatchOptions(sweep_dir=store.path.resolve(), **settings)
        script = render_submit(options)
        try:
            path = _write_script(store, SUBMIT_SCRIPT, script)
        except StoreError:
            shutil.rmtree(store.path, ignore_errors=True)
            raise
        try:
            proc = _sbatch(path)
        except SlurmTimeoutError as exc:
            where = store.path.resolve()
            raise SlurmError(
                f"{exc.message} The job may or may not have been submitted, so the sweep "
                f"{store.sweep_id} is kept in {where}.",
                hint=f"Check `squeue --me --name {shlex.quote(options.resolved_job_name)}`: "
                "a job there will run the sweep. If there is none, start agents on it with "
                f"`sweepherd scale {shlex.quote(str(where))} --nodes {options.nodes}` and the "
                "same options, or remove the folder.",
            ) from None
        except SlurmError:  # sbatch is missing: nothing was submitted
            shutil.rmtree(store.path, ignore_errors=True)
            raise
        if proc.returncode != 0:  # sbatch refused the job: nothing was submitted
            shutil.rmtree(store.path, ignore_errors=True)
            error = slurm_error("sbatch", proc.returncode, proc.stderr, proc.stdout)
            raise SlurmError(
                f"{error.message} Nothing was submitted; the sweep made for it was removed.",
                hint=error.hint,
            )
        job_id = parse_sbatch_parsable(proc.stdout)
        cls(store)._record(job_id, SUBMIT, options, path, n_nodes=options.nodes)
        return Submission(script, store, path, job_id, options.nodes, options)

    # -- scale ----------------------------------------------------------------------------

    def scale_options(self, overrides: Mapping[str, Any]) -> SbatchOptions:
        """The options of a scale job: those recorded at submit, with ``overrides`` on top.

        Overrides of ``None`` keep the recorded value. A sweep never submitted to Slurm
        (created by ``sweepherd run``) starts from the defaults. Of the recorded
        ``sbatch_args``, those that shape the submit job's set of nodes (``--nodelist``...) are
        not repeated: each element of a scale array is one node. ``gpus_per_node`` replaces
        recorded ``slots``, and ``slots`` recorded GPUs.
        """
        recorded = self.submitted_options(self.store.snapshot())
        args = recorded.get("sbatch_args")
        if isinstance(args, list) and "sbatch_args" not in overrides:
            kept = [a for a in args if str(a).partition("=")[0] not in _SUBMIT_ONLY_ARGS]
            if kept != args:
                log.info(
                    "not repeating the submit job's %s for one-node scale elements",
                    " ".join(str(a) for a in args if a not in kept),
                )
            recorded = {**recorded, "sbatch_args": kept}
        # A node runs GPU slots or CPU slots: asking for one replaces what was recorded of the
        # other (a CPU sweep scaled onto GPU nodes, or back).
        if overrides.get("gpus_per_node"):
            recorded = {k: v for k, v in recorded.items() if k != "slots"}
        if overrides.get("slots") is not None:
            recorded = {**recorded, "gpus_per_node": 0}
        return SbatchOptions.from_record(
            self.store.path.resolve(), recorded, **{**overrides, "nodes": 1}
        )

    def scale(
        self, n_nodes: int, overrides: Mapping[str, Any] | None = None, *, dry_run: bool = False
    ) -> Submission:
        """Add ``n_nodes`` one-node agents to the sweep with a job array, and record it.

        Raises :class:`~sweepherd.errors.LaunchError` when the sweep is cancelled or has
        nothing left to run, :class:`~sweepherd.errors.ConfigError` for invalid options, and
        :class:`~sweepherd.errors.SlurmError` when Slurm refuses (nothing is submitted then).
        With ``dry_run`` it only renders the script (after the same checks but Slurm's).
        """
        if self.store.meta.get("backend") == "wandb":
            raise LaunchError(
                f"sweep {self.store.sweep_id} is run by W&B's controller (--backend wandb): "
                "sweepherd's agents cannot join it.",
                hint="Submit more `wandb agent`s with `sweepherd submit SWEEP_YAML --backend "
                "wandb`, or start them by hand with the sweep id `sweepherd status` shows.",
            )
        snapshot = self.store.snapshot()
        ended = finished_reason(self.store, snapshot)
        if ended is not None:
            raise LaunchError(
                f"sweep {self.store.sweep_id} {ended}: more agents would have nothing to do.",
                hint="Start a new sweep with `sweepherd submit SWEEP_YAML` instead.",
            )
        options = self.scale_options(overrides or {})
        if not dry_run:
            require_commands("sbatch")
        script = render_scale(options, n_nodes)
        if dry_run:
            return Submission(script, self.store, n_nodes=n_nodes, options=options)
        make_output_folder(options.output)
        path = _write_script(self.store, None, script)
        proc = _sbatch(path)
        if proc.returncode != 0:
            with contextlib.suppress(OSError):
                path.unlink()
            raise slurm_error("sbatch", proc.returncode, proc.stderr, proc.stdout)
        job_id = parse_sbatch_parsable(proc.stdout)
        self._record(job_id, SCALE, options, path, n_nodes=n_nodes, array=f"0-{n_nodes - 1}")
        return Submission(script, self.store, path, job_id, n_nodes, options)

    # -- cancel ---------------------------------------------------------------------------

    def cancel_jobs(self) -> CancelReport:
        """``scancel`` every job recorded for the sweep (an array's id cancels all its tasks).

        Call it after cancelling the sweep in the store, so that agents stopped by Slurm's
        SIGTERM record their runs as killed, not preempted. Where Slurm's commands are absent
        the report says so instead of raising.
        """
        ids = recorded_job_ids(self.store.snapshot())
        if not ids:
            return CancelReport()
        try:
            require_commands("squeue", "scancel")
        except SlurmError as exc:
            return CancelReport(unavailable=exc.message, unavailable_jobs=tuple(ids))
        states = squeue_jobs(ids)
        live = {
            job_id
            for job_id in ids
            for s in states
            if not s.is_terminal and job_id in (s.job_id, s.raw_job_id, s.array_job_id)
        }
        not_signalled = set(scancel([j for j in ids if j in live]))
        cancelled = tuple(j for j in ids if j in live and j not in not_signalled)
        return CancelReport(cancelled, tuple(j for j in ids if j not in cancelled))

    # -- recorded jobs --------------------------------------------------------------------

    @staticmethod
    def submitted_options(snapshot: Snapshot) -> dict[str, Any]:
        """The options recorded with the sweep's latest submit job ({} if it has none)."""
        latest: dict[str, Any] = {}
        latest_t = float("-inf")
        for info in snapshot.jobs.values():
            options = info.get("options")
            if info.get("kind") == SUBMIT and isinstance(options, dict):
                t = float(info.get("first_t", 0.0))
                if t >= latest_t:
                    latest, latest_t = dict(options), t
        return latest

    def _record(
        self,
        job_id: str,
        kind: str,
        options: SbatchOptions,
        script_path: Path,
        *,
        n_nodes: int,
        array: str | None = None,
    ) -> None:
        info: dict[str, Any] = {"kind": kind, "nodes": n_nodes, "script": str(script_path)}
        if array is not None:
            info["array"] = array
        info["options"] = options.to_record()
        try:
            with self.store.transaction() as txn:
                txn.record_job(job_id, **info)
        except StoreError as exc:
            raise StoreError(
                f"Slurm job {job_id} was submitted, but it could not be recorded in the sweep: "
                f"{exc.message}",
                hint=f"The job runs anyway; `scancel {job_id}` stops it. sweepherd cancel and "
                "scale will not know of it.",
            ) from exc


def recorded_job_ids(snapshot: Snapshot) -> list[str]:
    """The ids of the jobs submitted for the sweep (submit and scale), oldest first."""
    return sorted(snapshot.jobs, key=lambda j: float(snapshot.jobs[j].get("first_t", 0.0)))


def finished_reason(store: SweepStore, snapshot: Snapshot) -> str | None:
    """Why the sweep can have no more work (``"was cancelled"``...), or None if it may.

    A sweep is over when it is cancelled, or when every run has ended for good (given-up runs
    included: no agent starts them again) and the search has nothing new to give (run cap or
    metric target reached, grid exhausted).
    """
    from sweepherd.search import done_reason, suggest

    if snapshot.cancelled:
        return "was cancelled"
    runs = list(snapshot.runs.values())
    if any(r.state is RunState.RUNNING or r.will_run_again for r in runs):
        return None  # running, or preempted/lost and waiting to be run again
    config = store.config
    reason = done_reason(config, runs)
    if reason is not None:
        return f"is finished ({reason})"
    if config.method == "grid" and not suggest(config, runs, 1):
        return f"is finished (all {len(runs)} grid points have run)"
    return None


def _absolute_output(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with a relative ``output`` pattern made absolute (sbatch would take it from
    the directory it is run in, which a later ``scale`` need not share)."""
    out = dict(settings)
    output = out.get("output")
    if isinstance(output, str) and output.strip():
        out["output"] = str(Path(output).expanduser().absolute())
    return out


def make_output_folder(output: str | None) -> None:
    """Create the folder of a ``--output`` pattern: Slurm never does, and a job whose output
    file cannot be opened ends at once with nothing written anywhere (``JobLaunchFailure``).
    A folder named by a pattern Slurm fills in per job (``%j``...) cannot be made ahead."""
    if output is None:
        return
    folder = Path(output).parent
    if "%" in str(folder):
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--output: cannot create the folder {folder} for the job's output: "
            f"{exc.strerror or exc}",
            hint="choose a folder you can write to",
        ) from None


def _write_script(store: SweepStore, name: str | None, script: str) -> Path:
    """Write ``script`` to ``<sweep>/slurm/<name>``, or to a new ``scale-<k>.sbatch``."""
    folder = store.path.resolve() / "slurm"
    try:
        folder.mkdir(exist_ok=True)  # Slurm writes the job's output here; it never creates it
        if name is not None:
            path = folder / name
            path.write_text(script)
            return path
        for k in range(1, 100_000):
            path = folder / f"scale-{k}.sbatch"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(script)
            return path
    except OSError as exc:
        raise StoreError(
            f"cannot write the sbatch script into {folder}: {exc.strerror or exc}",
            hint="Check that the sweep directory is writable and its filesystem not full.",
        ) from exc
    raise StoreError(f"{folder} holds too many scale scripts; remove old ones")


def _sbatch(path: Path) -> subprocess.CompletedProcess[str]:
    """``sbatch --parsable`` the script; a non-zero exit is returned (the job was refused).

    Raises :class:`SlurmError` when sbatch is missing or hangs (then it may have submitted).
    """
    return run_slurm(["sbatch", "--parsable", str(path)], timeout_s=SBATCH_TIMEOUT_S, check=False)
