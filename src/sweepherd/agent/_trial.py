"""One trial: the user's command for one run, started in its own process group.

The command runs as an argv list, never through a shell, with stdin closed and its output
appended to ``stdout.log`` / ``stderr.log`` in the run folder. It gets its own session (and so
its own process group), so a Ctrl-C in the terminal or Slurm's signal to the agent reaches it
only through the agent, which signals the whole group: a script's DataLoader workers stop too.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING

from sweepherd.agent._metrics import RunMetrics
from sweepherd.agent._slots import Slot
from sweepherd.errors import AgentError
from sweepherd.runs import Run

if TYPE_CHECKING:
    from sweepherd.wandb import AttemptLogs

#: :meth:`Trial._peek` of a process reaped meanwhile (no ``si_code`` is negative).
_REAPED = -1


class StopCause(str, Enum):
    """Why the agent stopped a trial (None when the trial ended by itself)."""

    EARLY = "early"  # hyperband: the run ends as "stopped"
    PREEMPT = "preempt"  # Slurm's warning signal / SIGTERM to the agent: "preempted"
    CANCEL = "cancel"  # the sweep was cancelled: "killed"
    SUPERSEDED = "superseded"  # another attempt of this run already finished


@dataclass
class Trial:
    """A running trial and everything the agent tracks about it."""

    run: Run
    slot: Slot
    process: subprocess.Popen[bytes]
    metrics: RunMetrics
    started_monotonic: float
    stop_cause: StopCause | None = None
    stop_reason: str | None = None  # why it was asked to stop, in words (for its run's record)
    stop_deadline: float | None = None  # monotonic time at which SIGKILL follows SIGTERM
    pidfd: int | None = None
    died_at: float | None = None  # monotonic time it was seen dead of an outside signal
    #: When the agent got its stop signal, the process had already exited by itself (True),
    #: had not, or had been killed (False), or was being reaped at that very moment (None:
    #: its exit status decides, see :meth:`ended_by_itself_first`).
    ended_before_stop: bool | None = False
    #: The wandb transaction logs the run had before this attempt started (earlier attempts').
    logs_at_start: frozenset[Path] = frozenset()
    spawned_at: float = 0.0  # unix time the process was started
    run_dir: Path = Path()  # the run's folder, as the trial was given it
    #: A wandb log of this attempt is in the run's folder (or linked in): no more looking for
    #: one written elsewhere; and the monotonic time of the next look (``_rundir.py``).
    wandb_log_seen: bool = False
    next_log_look: float = 0.0
    #: Which wandb logs are this attempt's (None without the wandb support); the agent marks it
    #: superseded when it learns that a later attempt of the run exists.
    attempt_logs: AttemptLogs | None = None

    def note_later_attempt(self) -> None:
        """Another agent runs this run again: its logs must not count as this attempt's."""
        if self.attempt_logs is not None:
            self.attempt_logs.note_later_attempt()

    @property
    def pid(self) -> int:
        return self.process.pid

    def poll(self) -> int | None:
        """The exit status if the process has ended (negative: killed by that signal)."""
        return self.process.poll()

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the trial's whole process group (ignore it if already gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def exited_by_itself(self) -> bool | None:
        """True once the process has exited (not been killed by a signal); does not reap it.

        Safe in a signal handler: it only peeks at the process's state. None when the process
        is being reaped at this very instant: a handler can run between ``poll()``'s reaping
        and its storing of the exit status, which only that ``poll()`` then knows.
        """
        code = self.process.returncode
        if code is not None:
            return code >= 0
        state = self._peek()
        return None if state == _REAPED else state == os.CLD_EXITED

    def ended_by_itself_first(self, code: int) -> bool:
        """Whether the trial, now ended with exit status ``code``, had exited by itself before
        the agent's stop signal (as recorded in :attr:`ended_before_stop`)."""
        if self.ended_before_stop is None:  # it had ended: being reaped as the signal came
            return code >= 0
        return self.ended_before_stop

    def has_ended(self) -> bool:
        """True once the process has ended, by itself or by a signal; does not reap it."""
        return self.process.returncode is not None or self._peek() is not None

    def _peek(self) -> int | None:
        """How the process ended, without reaping it: waitid's ``si_code`` (``CLD_EXITED``,
        ``CLD_KILLED``...); None while it runs; :data:`_REAPED` if it was reaped meanwhile."""
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return _REAPED
        return None if info is None else info.si_code

    def request_stop(self, cause: StopCause, grace_s: float, *, reason: str | None = None) -> None:
        """SIGTERM the group now, SIGKILL it after ``grace_s`` if still alive (see :meth:`tick`).

        A trial that has already ended keeps no cause: its exit status says how it ended (an
        OOM kill is a failure, not a stop), and one that ends in the very instant it is asked
        to stop counts as stopped.
        """
        if self.stop_cause is None and not self.has_ended():
            self.stop_cause = cause
            self.stop_reason = reason
        self.end_group(grace_s)

    def group_alive(self) -> bool:
        """True while a process of the trial's group other than a zombie is still there.

        The main process may end while others it started in its group go on (a wrapper script
        that did not ``exec``, a worker that ignores SIGTERM); they would hold the slot's GPU
        beside the next run. Zombies do not count: where nothing reaps orphans they never go.
        """
        return bool(live_group_members(self.pid))

    def end_group(self, grace_s: float) -> None:
        """SIGTERM the group now, SIGKILL it after ``grace_s`` (see :meth:`tick`), without a
        stop cause (what the main process left behind); a stop already asked for keeps its
        deadline."""
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + grace_s
            self.signal_group(signal.SIGTERM)

    def tick(self) -> None:
        """Escalate to SIGKILL once the stop grace has run out."""
        if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
            self.signal_group(signal.SIGKILL)

    def close(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None


def live_group_members(pgid: int) -> list[int]:
    """The pids in process group ``pgid`` that are not zombies (read from /proc)."""
    try:
        entries = os.listdir("/proc")  # noqa: PTH208 - names only, in a hot loop
    except OSError:  # no /proc: ask the kernel whether the group has any member at all
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    out = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:  # noqa: PTH123 - hot loop, plain open
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] != b"Z":
            out.append(int(entry))
    return out


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    run_dir: Path,
    attempt: int,
    banner: str,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with output appended to the run folder's log files."""
    out = _open_log(run_dir / "stdout.log", attempt, banner)
    err = _open_log(run_dir / "stderr.log", attempt, banner)
    try:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            close_fds=True,
            # Safe despite the heartbeat thread: the hook only calls one pre-resolved libc
            # function (no imports, no locks), and CPython re-initialises its own state in the
            # child before running it.
            preexec_fn=_DIE_WITH_AGENT,  # noqa: PLW1509
        )
    except FileNotFoundError as exc:
        raise AgentError(
            f"cannot start the run's command: {argv[0]!r} was not found",
            hint="check `program`/`command` in sweep.yaml and that it exists on this node",
        ) from exc
    except PermissionError as exc:
        raise AgentError(
            f"cannot start the run's command: {argv[0]!r} is not executable",
            hint="make it executable (chmod +x) or run it through an interpreter in `command`",
        ) from exc
    except OSError as exc:
        raise AgentError(f"cannot start the run's command {argv[0]!r}: {exc.strerror}") from exc
    finally:
        out.close()
        err.close()


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook that makes the trial die (SIGKILL) when its agent dies, on Linux.

    The trial has its own session, so nothing else would stop it if the agent were killed
    outright (OOM killer, ``kill -9``): it would run on unwatched while another agent re-runs
    its run. ``prctl(PR_SET_PDEATHSIG)`` asks the kernel to kill it instead. The libc function
    is looked up here, in the parent, so the child only makes one system call before exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigkill = int(signal.SIGKILL)

    def hook() -> None:
        prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)

    return hook


_DIE_WITH_AGENT = _die_with_parent()


def _open_log(path: Path, attempt: int, banner: str) -> IO[bytes]:
    f = path.open("ab")
    if attempt > 1:
        f.write(f"--- sweepherd: {banner} ---\n".encode())
        f.flush()
    return f


def pidfd_for(pid: int) -> int | None:
    """A pidfd that becomes readable when ``pid`` exits, where the OS has them (Linux >= 5.3)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd
