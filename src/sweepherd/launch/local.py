"""The local launcher: N agent processes on this machine, GPUs split between them.

Each agent is a real ``python -m sweepherd agent`` process, exactly what runs on a cluster
node, in its own session so that a Ctrl-C reaches it only through the launcher, which turns it
into a graceful stop (running runs are marked preempted and can be resumed later). So do the
SIGTERM of ``kill``, ``timeout`` or a service manager and the SIGHUP of a closed terminal
(:func:`stop_signals_interrupt`): the agents, in sessions of their own, would otherwise go on
with the sweep unseen. Agent logs go to ``<sweep>/logs/agent-<i>.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sweepherd._signals import handling
from sweepherd.errors import LaunchError
from sweepherd.store import SweepStore


@dataclass(frozen=True)
class AgentSpec:
    """The command-line options of one local agent (beyond the sweep itself)."""

    args: tuple[str, ...] = ()


@dataclass
class LocalOutcome:
    """How the local agents ended."""

    exit_codes: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # each failed agent's last error line
    interrupted: bool = False


def split_gpus(gpus: Sequence[str], n_agents: int) -> list[tuple[str, ...]]:
    """Give each agent a contiguous share of the GPUs (every agent gets at least one)."""
    if n_agents > len(gpus):
        raise LaunchError(
            f"{n_agents} agents cannot share {len(gpus)} GPUs: each agent needs at least one",
            hint="lower --agents, or use --trials-per-gpu to run several trials per GPU",
        )
    base, extra = divmod(len(gpus), n_agents)
    out, start = [], 0
    for i in range(n_agents):
        size = base + (1 if i < extra else 0)
        out.append(tuple(gpus[start : start + size]))
        start += size
    return out


@dataclass(frozen=True)
class ProcessSpec:
    """One process to start: its command, the log file its output goes to, and where it runs."""

    argv: Sequence[str]
    log: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None


#: The signals that stop the launcher's processes as a Ctrl-C does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While the body runs, SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C's SIGINT does,
    so that a launcher killed by ``kill``, ``timeout`` or a closed terminal stops its processes
    (which run in sessions of their own) instead of leaving them behind. Main thread only:
    elsewhere Python delivers no signal, and nothing changes."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    # One ignored on purpose stays ignored: `nohup sweepherd run ...` outlives its terminal.
    wanted = [sig for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]
    with handling(wanted, interrupt):
        yield


class ProcessGroup:
    """Processes started together, each in its own session, signalled and counted together.

    Their own sessions keep a terminal's Ctrl-C from reaching them directly: the caller decides
    how to stop them (:meth:`stop`). If one cannot start, those already started are killed.
    """

    def __init__(self, what: str) -> None:
        self.what = what  # for messages: "a local agent", "`wandb agent`"
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, specs: Sequence[ProcessSpec]) -> None:
        """Start every process; on any way out before the last has started (an error, a
        Ctrl-C), those already started are stopped."""
        try:
            self._start(specs)
        except BaseException:
            self.stop(signal.SIGTERM)
            raise

    def _start(self, specs: Sequence[ProcessSpec]) -> None:
        for spec in specs:
            try:
                spec.log.parent.mkdir(parents=True, exist_ok=True)
                with spec.log.open("ab") as out:
                    proc = subprocess.Popen(
                        list(spec.argv),
                        cwd=spec.cwd,
                        env=None if spec.env is None else dict(spec.env),
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
            except OSError as exc:
                self.stop(signal.SIGKILL)
                raise LaunchError(f"could not start {self.what}: {exc}") from exc
            self.procs.append(proc)

    @property
    def n_alive(self) -> int:
        return sum(p.poll() is None for p in self.procs)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal every process still running."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    def sleep_until_an_exit(self, timeout_s: float) -> None:
        """Sleep up to ``timeout_s``, waking early when one of the processes ends."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.procs if p.returncode is None):
                return
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


class LocalLauncher:
    """Starts, watches and stops the agent processes of one sweep on this machine."""

    def __init__(self, store: SweepStore, specs: Sequence[AgentSpec]) -> None:
        self.store = store
        self.specs = list(specs)
        self.log_dir = store.path / "logs"
        self._group = ProcessGroup("a local agent")

    def start(self) -> None:
        """Start every agent."""
        self._group.start(
            [
                ProcessSpec(
                    (sys.executable, "-m", "sweepherd", "agent", str(self.store.path), *spec.args),
                    self.log_dir / f"agent-{i}.log",
                )
                for i, spec in enumerate(self.specs)
            ]
        )

    @property
    def n_alive(self) -> int:
        return self._group.n_alive

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal every agent still running (SIGTERM: stop gracefully, runs resume later)."""
        self._group.stop(sig)

    def wait(self, on_tick: Callable[[], None] | None = None, tick_s: float = 0.5) -> LocalOutcome:
        """Wait for every agent to end, calling ``on_tick`` every ``tick_s``.

        A Ctrl-C (KeyboardInterrupt) stops the agents gracefully and is remembered in the
        outcome; a second one kills them (a SIGTERM or SIGHUP only ever stops them).
        """
        outcome = LocalOutcome()
        stopping = False
        while True:
            try:
                while self.n_alive:
                    if on_tick is not None:
                        on_tick()
                    self._group.sleep_until_an_exit(tick_s)
                break
            except KeyboardInterrupt as exc:
                outcome.interrupted = True
                # A second Ctrl-C kills; a SIGHUP after a SIGTERM (a logout) only stops again.
                ctrl_c = not exc.args
                self.stop(signal.SIGKILL if stopping and ctrl_c else signal.SIGTERM)
                stopping = True
        if on_tick is not None:
            on_tick()
        for i, proc in enumerate(self._group.procs):
            code = proc.wait()
            outcome.exit_codes.append(code)
            if code not in (0, 75) and not outcome.interrupted:
                line = _last_error_line(self.log_dir / f"agent-{i}.log")
                outcome.errors.append(line or f"agent {i} exited with status {code}")
        return outcome


def _last_error_line(path: Path) -> str | None:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: ") :]
    return None
