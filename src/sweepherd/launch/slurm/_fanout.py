"""One agent per node of the current Slurm allocation, started with srun, with signals passed on.

``sweepherd agent SWEEP --all-nodes`` runs this inside an allocation (an sbatch script, or a
shell from ``salloc``): it expands ``$SLURM_JOB_NODELIST``, starts one ``srun`` step per node
running the agent there, passes the signals it receives on to the agents, waits for them all,
and — when an agent says it stopped with work left (exit :data:`REQUEUE_EXIT_STATUS`) —
requeues the batch job so that a new allocation resumes the preempted runs — only while the
job is still running: after ``scancel`` (or a time limit reached without the warning signal)
Slurm shows it COMPLETING, and would requeue even a job the user cancelled.

Signals (measured on Slurm 22.05). A signal sent to a step — by srun passing one on, or by
``scancel --signal`` — reaches *every* process of the step, the agent's trials included, not
only the task srun started. Passing SIGUSR1 on would therefore kill a trial that does not
handle it (or make PyTorch Lightning requeue the job itself) before the agent can stop it
gracefully. So on the first SIGUSR1, SIGTERM or SIGINT this process asks the agents to stop
with :data:`AGENT_STOP_SIGNAL` (SIGURG, ``scancel --signal=23 $SLURM_JOB_ID``, or the srun
steps of an array task, see :func:`_signal_targets`), or :data:`AGENT_TIME_LIMIT_SIGNAL`
(SIGWINCH, 28) when the signal was Slurm's time-limit warning (SIGUSR1), sent by number as
scancel 22.05 knows no WINCH by name: both are ignored by default, so the trials never
notice them, and the agents stop gracefully on them. If that
scancel fails, the sruns get SIGUSR1, which srun passes on at once. A second SIGTERM or SIGINT
is passed on to the sruns as SIGTERM: srun then aborts its step (its processes get SIGTERM,
then SIGKILL). A single SIGINT would make srun only print the step's status, which is why the
sruns run in their own sessions: a Ctrl-C typed in an salloc shell reaches only this process.
The batch shell is the only process that gets Slurm's own ``--signal=B:USR1@grace``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from sweepherd._signals import handling
from sweepherd.errors import LaunchError, SlurmError
from sweepherd.launch.slurm._commands import (
    job_requeueable,
    job_steps,
    job_time_limit_s,
    scancel,
    scontrol_requeue,
    scontrol_show_hostnames,
    squeue_jobs,
    srun_argv,
)
from sweepherd.runs import TIME_LIMIT_SIGNAL_ENV

log = logging.getLogger(__name__)

#: An agent's exit status meaning "stopped by a signal with work left: requeue me" (EX_TEMPFAIL).
REQUEUE_EXIT_STATUS = 75

#: How long to wait for Slurm's SIGTERM after requeueing the job (measured: ~5 ms).
_REQUEUE_TERM_WAIT_S = 2.0
#: The signal that asks the agents of the steps to stop gracefully: ignored by default, so the
#: trials (which get it too, as every process of a step does) carry on until the agent stops them.
AGENT_STOP_SIGNAL = signal.SIGURG
#: The same, when what came was Slurm's warning before the time limit (USR1): the agents then
#: know why they stop (a run that keeps no checkpoint is not resumed forever; see
#: ``sweepherd.runs.MAX_TIMEOUTS``). Also ignored by default; the agents this starts are told
#: of it (``sweepherd.runs.TIME_LIMIT_SIGNAL_ENV``): elsewhere a terminal sends it on resize.
AGENT_TIME_LIMIT_SIGNAL = signal.SIGWINCH
_FORWARDED = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class FanOutResult:
    """How the agents of one fan-out ended."""

    nodes: tuple[str, ...]
    exit_statuses: tuple[int, ...]  # srun's status per node; -N when srun died of signal N
    requeued: bool  # the batch job was requeued (it gets SIGTERM from Slurm next)

    @property
    def exit_status(self) -> int:
        """One status for the whole fan-out.

        :data:`REQUEUE_EXIT_STATUS` if requeued or any agent asked for it, else 0 when every
        agent exited 0, else the first failure (128 + N for death by signal N).
        """
        if self.requeued or REQUEUE_EXIT_STATUS in self.exit_statuses:
            return REQUEUE_EXIT_STATUS
        for status in self.exit_statuses:
            if status != 0:
                return 128 - status if status < 0 else status
        return 0


def allocation_nodes(env: Mapping[str, str] | None = None) -> list[str]:
    """The node names of the current allocation, from ``$SLURM_JOB_NODELIST``."""
    env = os.environ if env is None else env
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise LaunchError(
            "--all-nodes needs a Slurm allocation, but SLURM_JOB_NODELIST is not set.",
            hint="Run it inside an sbatch script or an salloc shell, or drop --all-nodes.",
        )
    nodes = scontrol_show_hostnames(nodelist)
    if not nodes:
        raise SlurmError(f"`scontrol show hostnames {nodelist}` listed no nodes.")
    return nodes


class _Forwarder:
    """Signal handler passing signals on to the agents (see the module docstring)."""

    def __init__(self, job_id: str | None) -> None:
        self.job_id = job_id
        self.procs: list[subprocess.Popen[bytes]] = []
        self.n_received = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.n_received += 1
        running = [p for p in self.procs if p.returncode is None]
        name = signal.Signals(signum).name
        if not running:
            log.info("got %s: no agent left to pass it on to", name)
            return
        if self.n_received > 1 and signum != signal.SIGUSR1:
            log.info("got %s again: aborting the %d agent step(s)", name, len(running))
            for proc in running:
                self.send(proc, signal.SIGTERM)
            return
        log.info("got %s: asking %d agent(s) to stop", name, len(running))
        if self.job_id is not None:
            ask = AGENT_TIME_LIMIT_SIGNAL if signum == signal.SIGUSR1 else AGENT_STOP_SIGNAL
            stop = str(int(ask))  # by number: scancel 22.05 knows no WINCH by name
            why = f"job {self.job_id} is not running, so {ask.name} cannot reach it"
            try:
                targets = _signal_targets(self.job_id)
                if targets and len(scancel(targets, signal=stop)) < len(targets):
                    return
            except SlurmError as exc:
                why = str(exc)
            if _running(self.job_id):
                log.warning("%s", why)
                log.warning("passing SIGUSR1 on through srun instead; it reaches the trials too")
            else:  # scancel'ed (sweepherd cancel, or by hand): its steps are going already
                log.info("job %s is ending: passing SIGUSR1 on through srun", self.job_id)
        for proc in running:
            self.send(proc, signal.SIGUSR1)

    @staticmethod
    def send(proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)  # does nothing once the process has been reaped


def _signal_targets(job_id: str) -> list[str]:
    """What to signal to reach every process of the job's steps.

    The job itself, except for an array task (``7_3``): Slurm refuses to signal one while
    other tasks of its array pend ("Job can not be altered now") and scancel retries for
    ~95 s, so its srun steps are signalled instead, which works at once (measured, 22.05).
    Not for every job: on the test cluster, signalling a step of a two-node job failed with
    "Invalid job id" where signalling the job worked.
    """
    return job_steps(job_id) if "_" in job_id else [job_id]


@contextmanager
def _forwarding(forwarder: _Forwarder) -> Iterator[None]:
    with handling(_FORWARDED, forwarder) as installed:
        if not installed:
            log.warning("not in the main thread: signals are not passed on to the agents")
        yield


def fan_out(
    command: Sequence[str],
    *,
    nodes: Sequence[str] | None = None,
    requeue: bool = True,
    gres: str | None = None,
    srun_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> FanOutResult:
    """Run ``command`` once on every node of the current allocation and wait for all of them.

    ``nodes`` defaults to the allocation's (:func:`allocation_nodes`). Each step gets all of
    the job's resources on its node (``gres`` asks for fewer GPUs, e.g. ``"gpu:1"``). When an
    agent exits :data:`REQUEUE_EXIT_STATUS` and ``requeue`` is true, the batch job
    ``$SLURM_JOB_ID`` is requeued; a job that may not be requeued (``--no-requeue``, or an
    salloc allocation) is left as it is. Must run in the main thread to pass signals on.
    """
    env = os.environ if env is None else env
    names = list(nodes) if nodes is not None else allocation_nodes(env)
    forwarder = _Forwarder(job_reference(env))
    step_env = {**os.environ, TIME_LIMIT_SIGNAL_ENV: str(int(AGENT_TIME_LIMIT_SIGNAL))}
    requeued = False
    with _forwarding(forwarder):
        for node in names:
            if forwarder.n_received:
                log.info("stopping: not starting agents on the remaining nodes")
                break
            argv = srun_argv(command, node=node, gres=gres, extra_args=srun_args)
            try:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, start_new_session=True, env=step_env
                )
            except FileNotFoundError:
                for running in forwarder.procs:
                    forwarder.send(running, signal.SIGTERM)
                    running.wait()
                raise SlurmError(
                    "srun not found: Slurm's commands are not on PATH.",
                    hint="Run this inside a Slurm allocation on the cluster, or load the slurm "
                    "module.",
                ) from None
            forwarder.procs.append(proc)
        started = names[: len(forwarder.procs)]
        log.info("started agents on %d node(s): %s", len(started), ",".join(started))
        statuses = tuple(proc.wait() for proc in forwarder.procs)
        if requeue and REQUEUE_EXIT_STATUS in statuses:
            n_before = forwarder.n_received
            requeued = _requeue(env, _sweep_of(command))
            # Slurm now sends SIGTERM to the batch script (this process) within milliseconds;
            # take it here rather than dying of it after the handlers are restored.
            deadline = time.monotonic() + _REQUEUE_TERM_WAIT_S
            while requeued and forwarder.n_received == n_before and time.monotonic() < deadline:
                time.sleep(0.01)
    return FanOutResult(tuple(started), statuses, requeued)


def job_reference(env: Mapping[str, str]) -> str | None:
    """The id that names this job alone to scancel and scontrol.

    In a job array the last task's ``SLURM_JOB_ID`` equals the array's id, which names *every*
    task (measured: ``scontrol requeue`` of it requeued the whole array), so an array task is
    named ``<array id>_<task id>``.
    """
    array_id, task_id = env.get("SLURM_ARRAY_JOB_ID"), env.get("SLURM_ARRAY_TASK_ID")
    if array_id and task_id:
        return f"{array_id}_{task_id}"
    return env.get("SLURM_JOB_ID") or None


def _sweep_of(command: Sequence[str]) -> str:
    """The sweep an ``... sweepherd agent SWEEP ...`` command runs, for messages."""
    args = list(command)
    return args[args.index("agent") + 1] if "agent" in args[:-1] else "SWEEP"


def _requeue(env: Mapping[str, str], sweep: str = "SWEEP") -> bool:
    job_id = job_reference(env)
    if not job_id:
        return False
    if not _running(job_id):
        # Ending anyway (scancel, or killed at the time limit): Slurm shows it COMPLETING and
        # would honour a requeue even now (measured), bringing back a job the user cancelled.
        log.warning(
            "job %s is ending (cancelled, or requeued by Slurm or by hand): not requeued from "
            "here; its preempted runs resume when agents start (a requeued job's included)",
            job_id,
        )
        return False
    if _warned_at_start(job_id, env):
        return False
    if job_requeueable(job_id) is False:  # --no-requeue, or an salloc allocation
        log.info(
            "job %s may not be requeued (--no-requeue): its preempted runs wait for an agent "
            "(`sweepherd scale %s --nodes N` starts some)",
            job_id,
            sweep,
        )
        return False
    try:
        scontrol_requeue(job_id)
    except SlurmError as exc:
        log.warning("the job was not requeued: %s", exc)
        return False
    log.info("requeued job %s: its preempted runs resume when it starts again", job_id)
    return True


def _warned_at_start(job_id: str, env: Mapping[str, str]) -> bool:
    """True when the job's time limit is no longer than the warning's grace: the warning then
    comes as soon as it starts, and a requeued job would only be warned and requeued again."""
    try:
        grace_s = int(env.get("SWEEPHERD_SIGNAL_GRACE_S", ""))
        limit_s = job_time_limit_s(job_id)
    except (ValueError, SlurmError):
        return False
    if limit_s is None or limit_s > grace_s:
        return False
    log.error(
        "job %s: its time limit (%d s) is not longer than the warning signal's grace (%d s), so "
        "it is warned as soon as it starts; not requeued, or it would be requeued forever. "
        "Submit with a longer --time or a smaller --signal-grace (a partition's default or "
        "maximum time may be what limits it).",
        job_id,
        limit_s,
        grace_s,
    )
    return True


def _running(job_id: str) -> bool:
    """False when Slurm shows the job ending (COMPLETING at once after scancel, measured).

    After Slurm's warning signal the job is still RUNNING. When Slurm cannot be asked, True.
    """
    try:
        states = squeue_jobs([job_id])
    except SlurmError as exc:
        log.warning("could not ask Slurm for the job's state: %s", exc)
        return True
    return not states or any(s.state == "RUNNING" for s in states)


def run_on_all_nodes(argv: Sequence[str]) -> int:
    """``sweepherd agent SWEEP --all-nodes``: run ``sweepherd <argv>`` on every node.

    ``argv`` is the command line after ``sweepherd`` without ``--all-nodes`` (e.g.
    ``["agent", "/sweeps/x", "--gpus", "auto"]``); each node runs it with this Python.
    Returns :attr:`FanOutResult.exit_status`.
    """
    result = fan_out([sys.executable, "-m", "sweepherd", *argv])
    return result.exit_status
