"""The local launcher: N agent processes on this machine, GPUs split between them.

Each agent is a real ``python -m sweepherd agent`` process, exactly what runs on a cluster
node, in its own session so that a Ctrl-C reaches it only through the launcher, which turns it
into a graceful stop (running runs are marked preempted and can be resumed later). Agent logs
go to ``<sweep>/logs/agent-<i>.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


class LocalLauncher:
    """Starts, watches and stops the agent processes of one sweep on this machine."""

    def __init__(self, store: SweepStore, specs: Sequence[AgentSpec]) -> None:
        self.store = store
        self.specs = list(specs)
        self.log_dir = store.path / "logs"
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        """Start every agent."""
        self.log_dir.mkdir(exist_ok=True)
        for i, spec in enumerate(self.specs):
            argv = [sys.executable, "-m", "sweepherd", "agent", str(self.store.path), *spec.args]
            with (self.log_dir / f"agent-{i}.log").open("ab") as out:
                try:
                    proc = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                except OSError as exc:
                    self.stop(signal.SIGKILL)
                    raise LaunchError(f"could not start a local agent: {exc}") from exc
            self._procs.append(proc)

    @property
    def n_alive(self) -> int:
        return sum(p.poll() is None for p in self._procs)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal every agent still running (SIGTERM: stop gracefully, runs resume later)."""
        for proc in self._procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, sig)

    def wait(self, on_tick: Callable[[], None] | None = None, tick_s: float = 0.5) -> LocalOutcome:
        """Wait for every agent to end, calling ``on_tick`` every ``tick_s``.

        A Ctrl-C (KeyboardInterrupt) stops the agents gracefully and is remembered in the
        outcome; a second one kills them.
        """
        outcome = LocalOutcome()
        stopping = False
        while True:
            try:
                while self.n_alive:
                    if on_tick is not None:
                        on_tick()
                    _sleep_until_exit(self._procs, tick_s)
                break
            except KeyboardInterrupt:
                outcome.interrupted = True
                self.stop(signal.SIGKILL if stopping else signal.SIGTERM)
                stopping = True
        if on_tick is not None:
            on_tick()
        for i, proc in enumerate(self._procs):
            code = proc.wait()
            outcome.exit_codes.append(code)
            if code not in (0, 75) and not outcome.interrupted:
                line = _last_error_line(self.log_dir / f"agent-{i}.log")
                outcome.errors.append(line or f"agent {i} exited with status {code}")
        return outcome


def _sleep_until_exit(procs: Sequence[subprocess.Popen[bytes]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs if p.returncode is None):
            return
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _last_error_line(path: Path) -> str | None:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: ") :]
    return None
