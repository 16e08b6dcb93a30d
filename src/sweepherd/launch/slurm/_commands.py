"""The one module that runs Slurm's commands: sbatch, squeue, scancel, scontrol, and srun's argv.

Each command runs as an argv list (never through a shell) with a timeout, in this process's
environment (so ``SLURM_CONF`` is inherited). A failure becomes one :class:`SlurmError` whose
message carries Slurm's own words and whose hint says what to do. Parsing is done by pure
functions (``parse_*``), tested on outputs captured from a real Slurm 22.05.

Slurm 22.05 facts this relies on (measured): ``sbatch --parsable`` prints ``id`` or
``id;cluster``; ``squeue -O`` fields with a suffix (``JobID:|``) are neither padded nor cut;
``exit_code`` there is the raw wait status (768 = exit 3, 9 = killed by SIGKILL); ``squeue -j``
fails with "Invalid job id specified" only when *none* of the ids is known; a pending array
range shows as one row ``10_[2-5%2]``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sweepherd.errors import SlurmError, SlurmTimeoutError
from sweepherd.launch.slurm._options import parse_time_limit_s

#: Default seconds to wait for a Slurm client command before giving up.
DEFAULT_TIMEOUT_S = 60.0

#: Job states after which a job never runs again (unless requeued by hand).
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)

#: ``squeue -O`` fields read by :func:`squeue_jobs`, in the order :func:`parse_squeue` expects.
SQUEUE_FIELDS = (
    "JobArrayID",
    "JobID",
    "ArrayJobID",
    "ArrayTaskID",
    "State",
    "Reason",
    "NodeList",
    "exit_code",
    "RestartCnt",
)
_SEP = "|"
SQUEUE_FORMAT = ",".join(f"{name}:{_SEP}" for name in SQUEUE_FIELDS)

_CONTROLLER_HINT = (
    "No Slurm controller answers. Run this on the cluster's login node, or set SLURM_CONF to "
    'its slurm.conf (for the local test cluster: eval "$(scripts/slurm-local.sh env)").'
)
#: (pattern in Slurm's message, what to do) — first match wins.
_HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), hint)
    for pattern, hint in (
        (
            r"invalid partition",
            "Use a partition that exists (list them with `sinfo -s`) in --partition.",
        ),
        (
            r"invalid --time|invalid time limit|time limit specification",
            "Give --time as MINUTES, MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, "
            "DAYS-HOURS:MINUTES or DAYS-HOURS:MINUTES:SECONDS.",
        ),
        (
            r"node configuration is not available|memory specification can not be satisfied"
            r"|more processors requested than permitted",
            "Ask for no more CPUs, GPUs or memory per node than the partition's nodes have "
            "(see `sinfo -o '%P %D %c %m %G'`).",
        ),
        (r"invalid qos", "Use a QOS your account may use (`sacctmgr show assoc user=$USER`)."),
        (
            r"invalid account",
            "Use an account you belong to in --account (`sacctmgr show assoc user=$USER`).",
        ),
        (
            r"violates accounting/qos policy|qosmax|assocmax",
            "Your account or QOS does not allow this request: ask for fewer nodes or less "
            "time, or use another --qos/--account.",
        ),
        (
            r"presently disabled",
            "This job may not be requeued: it was submitted with --no-requeue (or the "
            "cluster sets JobRequeue=0). Its preempted runs wait for an agent: `sweepherd "
            "scale SWEEP --nodes N` starts some.",
        ),
        (
            r"invalid job array specification",
            "The array may be larger than the cluster allows (`scontrol show config | grep "
            "MaxArraySize`): add fewer nodes per `sweepherd scale`.",
        ),
        (r"only batch jobs", "Only batch jobs can be requeued, not salloc or srun allocations."),
        (
            r"invalid job id",
            "The job has ended and left Slurm's memory, or never existed; check the id.",
        ),
        (
            r"unrecognized option|invalid option|unknown option",
            "sbatch does not know this option: check the --sbatch-arg values.",
        ),
        (
            r"configuration source|unable to contact|connection refused|unable to process "
            r"configuration|zero bytes were transmitted|socket timed out",
            _CONTROLLER_HINT,
        ),
    )
)
_PREFIX_RE = re.compile(r"^(?:s\w+|slurmstepd\S*): (?:error: |fatal: )?")
_NOT_SIGNALLED_RE = re.compile(
    r"job id (\S+): (?:Invalid job id specified|Job/step already completing or completed)"
)


@dataclass(frozen=True)
class JobState:
    """One row of ``squeue``: a job, an array task, or an array's pending range of tasks."""

    job_id: str  # as squeue shows it: "9", "10_0", or "10_[2-5%2]" for pending array tasks
    raw_job_id: str  # the unique numeric id of this job or array task ("11" for "10_0")
    array_job_id: str | None  # the array's id ("10"), None for a plain job
    array_task_id: int | None  # this task's index, None for a plain job or a pending range
    pending_tasks: str | None  # the pending range "2-5%2", else None
    state: str  # RUNNING, PENDING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
    reason: str | None  # why it is pending or ended ("BeginTime", "NonZeroExitCode"), or None
    nodes: str | None  # compressed node list ("node[1-2]"), None when it has none
    exit_code: int | None  # the exit status if it exited, None if it was killed by a signal
    signal: int | None  # the signal that killed it, else None
    restarts: int  # how many times it was requeued

    @property
    def is_terminal(self) -> bool:
        """True when the job (or task) has ended."""
        return self.state in TERMINAL_STATES


def _message(stderr: str, stdout: str = "") -> str:
    """Slurm's own words: its error lines without the ``sbatch: error:`` prefixes."""
    lines = [ln.strip() for ln in (stderr or stdout).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("Try ")]
    picked = (
        [ln for ln in lines if re.search(r"\bfatal\b", ln)]
        or [ln for ln in lines if re.search(r"\berror\b", ln)]
        or lines
    )
    words: list[str] = []
    for line in picked:
        text = _PREFIX_RE.sub("", line)
        if text not in words:
            words.append(text)
    return "; ".join(words) or "no message"


def slurm_error(command: str, returncode: int, stderr: str, stdout: str = "") -> SlurmError:
    """The :class:`SlurmError` for a failed Slurm command, with a hint when one is known."""
    message = _message(stderr, stdout)
    hint = next((h for pattern, h in _HINTS if pattern.search(message)), None)
    return SlurmError(f"{command} failed (exit {returncode}): {message}.", hint=hint)


def _check_environment(env: Mapping[str, str]) -> None:
    conf = env.get("SLURM_CONF")
    if conf and not Path(conf).is_file():
        # Slurm itself would retry for 60 s before failing.
        raise SlurmError(
            f"SLURM_CONF is set to {conf}, which is not a file.",
            hint="Point it at the cluster's slurm.conf, or unset it on a login node.",
        )


def require_commands(*names: str) -> None:
    """Check, before doing anything, that these Slurm commands can run here.

    Raises the same :class:`SlurmError` a call would (command not on PATH, ``SLURM_CONF``
    pointing at no file), so a caller can refuse before it creates anything.
    """
    _check_environment(os.environ)
    for name in names:
        if shutil.which(name) is None:
            raise _not_found(name)


def _not_found(command: str) -> SlurmError:
    return SlurmError(
        f"{command} not found: Slurm's commands are not on PATH.",
        hint="Run this on a login node of the cluster, or load the slurm module "
        "(`module load slurm`).",
    )


def run_slurm(
    argv: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run one Slurm command; raise :class:`SlurmError` when it is missing, hangs or fails.

    With ``check=False`` a non-zero exit is returned instead of raised.
    """
    _check_environment(os.environ)
    command = argv[0]
    try:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise _not_found(command) from None
    except subprocess.TimeoutExpired:
        raise SlurmTimeoutError(
            f"{command} did not answer within {timeout_s:g} s.",
            hint="The Slurm controller may be down or overloaded: check `sinfo`, then retry.",
        ) from None
    if check and proc.returncode != 0:
        raise slurm_error(command, proc.returncode, proc.stderr, proc.stdout)
    return proc


def parse_sbatch_parsable(stdout: str) -> str:
    """The job id printed by ``sbatch --parsable`` (``"123"`` or ``"123;cluster"``)."""
    lines = [ln.strip() for ln in stdout.splitlines() if ln.strip()]
    job_id = lines[-1].split(";", 1)[0] if lines else ""
    if not job_id.isdigit():
        raise SlurmError(
            f"sbatch printed no job id (got {stdout.strip()!r}).",
            hint="Check that `sbatch --parsable` works on this cluster.",
        )
    return job_id


def sbatch(
    script_path: str | Path,
    extra_args: Sequence[str] = (),
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> str:
    """Submit a batch script; return its job id (for an array, the array's id)."""
    proc = run_slurm(["sbatch", "--parsable", *extra_args, str(script_path)], timeout_s=timeout_s)
    return parse_sbatch_parsable(proc.stdout)


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def decode_wait_status(raw: int) -> tuple[int | None, int | None]:
    """``(exit_code, signal)`` of a raw wait status as squeue reports it (768 -> (3, None))."""
    if raw & 0x7F:
        return None, raw & 0x7F
    return (raw >> 8) & 0xFF, None


def parse_squeue(stdout: str) -> list[JobState]:
    """Parse ``squeue -h -O`` output in :data:`SQUEUE_FORMAT` into :class:`JobState` rows."""
    states: list[JobState] = []
    for line in stdout.splitlines():
        if not line.strip():
            continue
        fields = line.split(_SEP)
        if fields and fields[-1] == "":
            fields.pop()
        if len(fields) != len(SQUEUE_FIELDS):
            raise SlurmError(
                f"cannot read squeue's output line {line!r}: expected {len(SQUEUE_FIELDS)} "
                f"fields ({', '.join(SQUEUE_FIELDS)}).",
                hint="This Slurm may be too old or too new for sweepherd; please report it.",
            )
        shown, raw_id, array_id, task, state, reason, nodes, exit_raw, restarts = (
            f.strip() for f in fields
        )
        is_array = task not in ("N/A", "")
        task_id = _int_or_none(task) if is_array else None
        exit_code, signal = (
            decode_wait_status(int(exit_raw)) if exit_raw.isdigit() else (None, None)
        )
        states.append(
            JobState(
                job_id=shown,
                raw_job_id=raw_id,
                array_job_id=array_id if is_array else None,
                array_task_id=task_id,
                pending_tasks=task if is_array and task_id is None else None,
                state=state,
                reason=None if reason in ("None", "") else reason,
                nodes=nodes or None,
                exit_code=exit_code,
                signal=signal,
                restarts=_int_or_none(restarts) or 0,
            )
        )
    return states


def squeue_jobs(job_ids: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[JobState]:
    """The state of these jobs, in any state still in Slurm's memory (``-t all``).

    An array's id gives all its tasks (and its pending range). Jobs Slurm has forgotten
    (older than MinJobAge) are simply missing from the result.
    """
    ids = [str(j) for j in job_ids]
    if not ids:
        return []
    proc = run_slurm(
        ["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-O", SQUEUE_FORMAT],
        timeout_s=timeout_s,
        check=False,
    )
    if proc.returncode != 0:
        if "invalid job id" in proc.stderr.lower():
            return []  # none of the ids is known any more
        raise slurm_error("squeue", proc.returncode, proc.stderr, proc.stdout)
    wanted = set(ids)
    return [
        s for s in parse_squeue(proc.stdout) if wanted & {s.job_id, s.raw_job_id, s.array_job_id}
    ]


def job_time_limit_s(job_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> int | None:
    """The job's time limit in seconds as Slurm holds it now (``--time``, a partition's default
    or maximum); None when unlimited or unknown."""
    proc = run_slurm(
        ["squeue", "-h", "-j", str(job_id), "-o", "%l"], timeout_s=timeout_s, check=False
    )
    text = proc.stdout.strip().splitlines()[0] if proc.stdout.strip() else ""
    if proc.returncode != 0 or not text:
        return None
    try:
        return parse_time_limit_s(text)
    except ValueError:  # "INVALID", "NOT_SET"
        return None


def job_requeueable(job_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> bool | None:
    """Whether Slurm may requeue the job (False for ``--no-requeue``, and as a cluster's
    ``JobRequeue=0`` makes it); None when Slurm cannot tell."""
    proc = run_slurm(
        ["scontrol", "show", "job", "-o", str(job_id)], timeout_s=timeout_s, check=False
    )
    match = _REQUEUE_RE.search(proc.stdout) if proc.returncode == 0 else None
    return None if match is None else match.group(1) != "0"


_REQUEUE_RE = re.compile(r"\bRequeue=(\d+)")


def parse_scancel_not_signalled(stderr: str) -> list[str]:
    """Ids that scancel reports as already ended or unknown (not an error for cancelling)."""
    return _NOT_SIGNALLED_RE.findall(stderr)


def scancel(
    job_ids: Sequence[str],
    signal: str | None = None,
    batch: bool = False,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[str]:
    """Cancel jobs, or with ``signal`` send them that signal (``batch``: the batch shell only).

    Returns the ids that were not signalled because they have ended or are unknown; any
    other failure raises :class:`SlurmError`. Ids may name array tasks ("10_3") or steps
    ("10.0").
    """
    ids = [str(j) for j in job_ids]
    if not ids:
        return []
    argv = ["scancel"]
    if signal is not None:
        argv.append(f"--signal={signal}")
    if batch:
        argv.append("--batch")
    proc = run_slurm([*argv, *ids], timeout_s=timeout_s, check=False)
    not_signalled = parse_scancel_not_signalled(proc.stderr)
    other_errors = [
        ln for ln in proc.stderr.splitlines() if ln.strip() and not _NOT_SIGNALLED_RE.search(ln)
    ]
    if proc.returncode != 0 and other_errors:
        raise slurm_error("scancel", proc.returncode, "\n".join(other_errors))
    return not_signalled


_STEP_RE = re.compile(r"\S+\.\d+")


def job_steps(job_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """The ids of the job's srun steps still running (``10.0``, ``7_3.1``): not its batch or
    extern step. Empty once the job has ended (or is unknown)."""
    proc = run_slurm(
        ["squeue", "-s", "-h", "-j", str(job_id), "-o", "%i"], timeout_s=timeout_s, check=False
    )
    if proc.returncode != 0:
        if "invalid job id" in proc.stderr.lower():
            return []
        raise slurm_error("squeue", proc.returncode, proc.stderr, proc.stdout)
    return [line.strip() for line in proc.stdout.splitlines() if _STEP_RE.fullmatch(line.strip())]


def scontrol_requeue(job_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Requeue a batch job: it stops now and starts again (``SLURM_RESTART_COUNT`` + 1)."""
    run_slurm(["scontrol", "requeue", str(job_id)], timeout_s=timeout_s)


def scontrol_show_hostnames(nodelist: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """Expand a compressed node list (``node[1-3],gpu07``) into node names."""
    proc = run_slurm(["scontrol", "show", "hostnames", nodelist], timeout_s=timeout_s)
    return proc.stdout.split()


def srun_argv(
    command: Sequence[str],
    *,
    node: str,
    gres: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The argv that runs ``command`` as one task on ``node`` of the current allocation.

    No ``--exact``: each node runs one step, which should own all of the job's CPUs, memory
    and GPUs on that node (a step gets all of the job's GRES on its node unless ``gres`` asks
    for fewer; ``--exact`` would shrink it to one CPU where tasks are confined by cgroups).
    ``--overlap``: inside an interactive step (``srun --pty bash``) that holds the nodes, a
    step without it waits forever ("Requested nodes are busy"); in a batch job it changes
    nothing. Measured on Slurm 22.05; ``--overlap`` needs Slurm 20.11 or newer.
    """
    argv = [
        "srun",
        "--nodes=1",
        "--ntasks=1",
        f"--nodelist={node}",
        "--overlap",
        "--kill-on-bad-exit=0",
    ]
    if gres:
        argv.append(f"--gres={gres}")
    return [*argv, *extra_args, *command]
