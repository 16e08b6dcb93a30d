"""Uploading the sweep's offline wandb runs to W&B once they have ended: ``wandb sync`` per run.

Which runs: those in :data:`SYNC_STATES` (every terminal state: finished, failed, stopped early,
killed by a cancel; all hold data worth seeing), and lost or preempted runs that will not run
again (:attr:`~sweepherd.runs.Run.gave_up`). Any other preempted or lost run will run again
under the same id, so it waits; when it ends, its attempts' folders are sent one call each, in start
order, and W&B joins them into one run (``--id``). Folders of online runs (``run-*``, not
``offline-run-*``) were uploaded while they ran and are not sent.

What ``wandb sync`` (0.31) does, measured against a local stand-in server:

- it exits 0 even when the server refused a run; the only sign of success is the marker
  ``run-<id>.wandb.synced`` it writes next to each file it fully sent. So is it here;
- a file holding only its 7-byte header (a run killed before wandb's first flush) makes it fail
  the *whole* call ("error getting next record: EOF") and send nothing: such files are left out;
- a file with a torn tail (killed mid-write) is sent up to its last complete record, reported
  as "the file ends with an incomplete record" and never marked: it counts as synced when that is
  the only complaint, so it is not sent again;
- there is no option to set the run's group: the group is the one the run recorded from
  ``WANDB_RUN_GROUP`` at run time (the agent sets it to the sweep's name);
- without ``WANDB_SWEEP_ID`` at run time the run carries no sweep id, so no "sweep not found".

A run folder gets ``.synced`` (JSON: when, where, which files) once all its files are done; such
runs are never sent again.

A run declared lost whose wandb log changed after that was not dead: its agent was only cut off
and its trial lives on, and may yet end with a result. It is left for a later pass (not waited
for) while its log keeps changing: wandb writes system metrics into a live run's log every 15 s
or so, so a log quiet for :data:`ALIVE_QUIET_S` is taken for ended. Sent earlier, the run
would be marked synced with part of its data, and the rest would never go up.

Attempts after the one whose result a run holds are never sent: where an earlier attempt's
late result ended the run, their partial history and summary would become the W&B run's. The
agents record which logs each attempt wrote (``_attempts.py``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweepherd._signals import handling
from sweepherd.errors import WandbError
from sweepherd.runs import Run, RunState
from sweepherd.wandb._adopt import unreachable_links
from sweepherd.wandb._attempts import (
    attempt_records,
    awaits_last_attempt,
    has_later_attempts,
    later_attempt_logs,
)
from sweepherd.wandb._txlog import INSTALL_HINT, TransactionLogReader, find_run_logs

if TYPE_CHECKING:
    from sweepherd.store import Heartbeat, SweepStore

#: Run states whose data is uploaded: every terminal state.
SYNC_STATES: frozenset[RunState] = frozenset(
    {RunState.FINISHED, RunState.FAILED, RunState.STOPPED, RunState.KILLED}
)
#: The marker written into a run folder once its wandb data is uploaded.
MARKER_NAME = ".synced"
#: A transaction log modified this recently may still be written by a dying wandb-core.
DEFAULT_SETTLE_S = 5.0
#: A lost run's log that changed after the loss and in the last this many seconds is still being
#: written: wandb 0.31 adds a system-metrics record to a live run's log about every 15 s.
ALIVE_QUIET_S = 120.0
DEFAULT_TIMEOUT_S = 1800.0
_LOCK_NAME = "sync.lock"
#: Next to a transaction log wandb sent up to its torn tail (wandb itself never marks those).
_SENT_SUFFIX = ".sweepherd-sent"
#: Seconds an interrupted ``wandb sync`` gets to stop after SIGTERM before SIGKILL.
_INTERRUPT_GRACE_S = 5.0
#: Run-specific variables of a trial's environment that must not leak into ``wandb sync``.
_TRIAL_VARS = (
    "WANDB_MODE",
    "WANDB_RUN_ID",
    "WANDB_DIR",
    "WANDB_RESUME",
    "WANDB_RUN_GROUP",
    "WANDB_SWEEP_ID",
    "WANDB_SWEEP_PARAM_PATH",
    "WANDB_SERVICE",
)


@dataclass(frozen=True)
class SyncItem:
    """One ended run whose wandb data is still to be uploaded."""

    run_id: str
    state: RunState
    run_dir: Path
    files: tuple[Path, ...]  # transaction logs to send, in start order (empty: only mark done)
    torn: tuple[Path, ...] = ()  # those of ``files`` whose last record is incomplete
    empty: tuple[Path, ...] = ()  # attempts that wrote no record: never sent
    done: tuple[Path, ...] = ()  # attempts wandb already marked as synced
    later: tuple[Path, ...] = ()  # attempts after the one whose result the run holds: not sent


@dataclass(frozen=True)
class SyncPlan:
    """The runs to sync now, and those that must wait for their files to settle."""

    items: list[SyncItem]
    # run ids whose transaction logs changed in the last few seconds, or whose last attempt is
    # still being stopped because an earlier one's result ended the run
    waiting: list[str]
    # lost runs (given up, or in a cancelled sweep) whose trial still writes its wandb log
    # after its agent was declared lost: synced by a later pass, once that has ended
    deferred: list[str] = field(default_factory=list)
    # (run id, folder): runs with a log their script wrote outside the sweep, linked in by
    # the agent, in a folder this machine cannot see (a node's /tmp): not synced from here
    unreachable: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class SyncReport:
    """What one pass of :func:`sync` did."""

    synced: list[str] = field(default_factory=list)  # run ids now marked
    failed: dict[str, str] = field(default_factory=dict)  # run id -> why
    waiting: list[str] = field(default_factory=list)  # ended runs whose files are still settling
    deferred: list[str] = field(default_factory=list)  # see SyncPlan.deferred
    unreachable: list[tuple[str, str]] = field(default_factory=list)  # see SyncPlan


def plan_sync(
    store: SweepStore,
    *,
    states: Iterable[RunState] = SYNC_STATES,
    settle_s: float = DEFAULT_SETTLE_S,
    now: float | None = None,
) -> SyncPlan:
    """The ended, not yet synced runs of ``store`` (a :class:`~sweepherd.store.SweepStore`).

    Runs whose transaction logs changed in the last ``settle_s`` seconds (a killed run's
    wandb-core may still be flushing) are listed in ``waiting`` instead. Runs with a ``.synced``
    marker and runs that never wrote a wandb log are left out. In a cancelled sweep preempted
    and lost runs will never run again, so they are synced as they are, except that a lost
    run whose log is still being written is ``deferred``. A run an earlier attempt's late
    result ended waits while its last attempt's agent is stopping that attempt.
    """
    snap = store.snapshot()
    wanted = frozenset(states)
    if snap.cancelled:
        wanted |= {RunState.PREEMPTED, RunState.LOST}
    runs = snap.runs.values()
    # The agents' heartbeats matter only for runs an earlier attempt's late result ended.
    heartbeats = store.heartbeats() if any(map(has_later_attempts, runs)) else None
    return plan_runs(runs, store.runs_dir, wanted, settle_s, now, heartbeats)


def plan_runs(
    runs: Iterable[Run],
    runs_dir: Path,
    states: Iterable[RunState] = SYNC_STATES,
    settle_s: float = DEFAULT_SETTLE_S,
    now: float | None = None,
    heartbeats: Mapping[str, Heartbeat] | None = None,
) -> SyncPlan:
    """:func:`plan_sync` over a list of runs whose folders are ``runs_dir/<run id>``
    (``heartbeats``: the agents', by id; without them no agent is waited for)."""
    wanted = frozenset(states)
    now = time.time() if now is None else now
    items: list[SyncItem] = []
    waiting: list[str] = []
    deferred: list[str] = []
    unreachable: list[tuple[str, str]] = []
    for run in runs:
        if run.state not in wanted and not run.gave_up:
            continue
        run_dir = runs_dir / run.id
        if (run_dir / MARKER_NAME).exists():
            continue
        dead = unreachable_links(run_dir, run.id)
        if dead:  # sent without it, the run would be marked synced with part of its data
            unreachable += [(run.id, target) for target in dead]
            continue
        paths = find_run_logs(run_dir, run.id)
        if not paths:
            continue
        records = attempt_records(run_dir) if has_later_attempts(run) else {}
        if any(_mtime(p) > now - settle_s for p in paths) or awaits_last_attempt(
            run, records, heartbeats, now
        ):
            waiting.append(run.id)
            continue
        if _written_since_lost(run, paths, now):
            deferred.append(run.id)
            continue
        moot = later_attempt_logs(run, run_dir, records)
        files, torn, empty, done, later = [], [], [], [], []
        for path in paths:
            if path in moot:
                later.append(path)
                continue
            if _sent(path):
                done.append(path)
                continue
            reader = TransactionLogReader(path)
            n_records = len(reader.read_new_records())
            if n_records == 0:
                empty.append(path)
                continue
            files.append(path)
            if reader.offset < _size(path):
                torn.append(path)
        items.append(
            SyncItem(
                run.id,
                run.state,
                run_dir,
                tuple(files),
                tuple(torn),
                tuple(empty),
                tuple(done),
                tuple(later),
            )
        )
    return SyncPlan(items, waiting, deferred, unreachable)


def _written_since_lost(run: Run, paths: Iterable[Path], now: float) -> bool:
    """``run`` was declared lost, yet a log of it changed after that and not long ago: its
    trial lives on (its agent was only cut off) and may still end with a result."""
    if run.state is not RunState.LOST or run.ended_at is None:
        return False
    newest = max(map(_mtime, paths), default=0.0)
    return newest > run.ended_at and newest > now - ALIVE_QUIET_S


def wandb_sync_argv(
    item: SyncItem,
    *,
    project: str | None = None,
    entity: str | None = None,
    python: str = sys.executable,
) -> list[list[str]]:
    """The ``wandb sync`` calls for ``item``: one per attempt folder, in start order, each
    under the run's own id (W&B joins them into one run).

    One call per folder, because ``wandb sync`` given several stops after a file with a torn
    tail (the usual state of a killed attempt's file): the later attempts would never be sent
    and every retry would send the torn one again. ``project``/``entity`` override what the
    runs recorded (``WANDB_PROJECT``/``WANDB_ENTITY`` at run time, else W&B's defaults). The
    group cannot be set here (``wandb sync`` has no such option); the runs carry the one they
    had at run time.
    """
    argv = [python, "-m", "wandb", "sync", "--id", item.run_id]
    if project:
        argv += ["--project", project]
    if entity:
        argv += ["--entity", entity]
    return [[*argv, str(p.parent)] for p in item.files]


def sync(
    store: SweepStore,
    *,
    project: str | None = None,
    entity: str | None = None,
    watch: bool = False,
    interval_s: float = 60.0,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    settle_s: float = DEFAULT_SETTLE_S,
    env: Mapping[str, str] | None = None,
    on_item: Callable[[SyncItem, str | None], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_waiting: Callable[[list[str]], None] | None = None,
) -> SyncReport:
    """Upload every ended, not yet synced run of ``store``; with ``watch``, keep doing so.

    ``project``/``entity`` default to the sweep config's. Each run is one ``wandb sync`` call
    (at most ``timeout_s`` seconds); its ``.synced`` marker is written only when wandb marked
    every file it was given. ``on_item(item, error)`` is called after each run (``error`` is
    ``None`` on success).

    Without ``watch``: one pass (waiting for runs whose files are still settling, and telling
    ``on_waiting(run_ids)`` which whenever that list changes; the ``deferred`` runs of the
    report are not waited for), each failed run tried once;
    failures raise :class:`WandbError` after every other run was tried.
    With ``watch``: a pass every ``interval_s`` seconds, failed runs retried, until
    ``should_stop()`` is true (then the last pass's report is returned) or KeyboardInterrupt.

    Raises:
        WandbError: wandb is not installed, another ``sweepherd sync`` of this sweep is
            running, or (without ``watch``) some runs could not be synced.
    """
    if importlib.util.find_spec("wandb") is None:
        raise WandbError(
            "Syncing needs the wandb package, which is not installed.", hint=INSTALL_HINT
        )
    config = store.config
    project = project or store.wandb_project
    entity = entity or config.entity
    sync_env = _sync_env(env)
    total = SyncReport()
    with _SyncLock(store.path / _LOCK_NAME):
        while True:
            plan = plan_sync(store, settle_s=settle_s)
            report = SyncReport(
                waiting=plan.waiting, deferred=plan.deferred, unreachable=plan.unreachable
            )
            for item in plan.items:
                if not watch and item.run_id in total.failed:
                    continue  # tried once already in this call
                error = sync_item(
                    item, project=project, entity=entity, timeout_s=timeout_s, env=sync_env
                )
                if error is None:
                    report.synced.append(item.run_id)
                else:
                    report.failed[item.run_id] = error
                if on_item is not None:
                    on_item(item, error)
            if watch:
                if should_stop is not None and should_stop():
                    return report
                time.sleep(interval_s)
                continue
            total.synced += report.synced
            total.failed.update(report.failed)
            if on_waiting is not None and report.waiting and report.waiting != total.waiting:
                on_waiting(report.waiting)
            total.waiting = report.waiting
            total.deferred = report.deferred
            total.unreachable = report.unreachable
            if not report.waiting:
                break
            time.sleep(min(settle_s, 1.0))
    if total.failed:
        lines = [f"{run_id}: {why}" for run_id, why in total.failed.items()]
        raise WandbError(
            f"{len(total.failed)} run(s) could not be synced to W&B:\n  " + "\n  ".join(lines),
            hint="Fix the cause (`wandb login`, the network, project or entity) and run "
            "`sweepherd sync` again: runs already synced are not sent twice.",
        )
    return total


def sync_item(
    item: SyncItem,
    *,
    project: str | None = None,
    entity: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """Run ``wandb sync`` for one run and mark it; ``None`` on success, else why it failed.

    Attempt folders go up one call each, in start order; the first that fails stops the rest
    (a later attempt must not reach W&B before an earlier one). A folder sent is marked (by
    wandb, or by sweepherd for a torn file wandb sent up to its tail), so a retry after a
    failure sends only what is left.
    """
    outcome: dict[str, str] = {str(p): "already synced" for p in item.done}
    outcome.update({str(p): "empty: no record to send" for p in item.empty})
    outcome.update(
        {str(p): "not sent: an earlier attempt's result ended the run" for p in item.later}
    )
    argvs = wandb_sync_argv(item, project=project, entity=entity)
    for path, argv in zip(item.files, argvs, strict=True):
        output, error = _run_wandb_sync(argv, item.run_dir, timeout_s, env)
        if error is not None:
            return error
        if _wandb_marked(path):
            outcome[str(path)] = "synced"
        elif path in item.torn and _only_incomplete_tail(output, path):
            outcome[str(path)] = "synced up to its last complete record (torn tail)"
            _mark_sent(path)
        else:
            return f"wandb did not confirm {path.parent.name}: {_tail(output)}"
    write_marker(item, outcome, project=project, entity=entity)
    return None


def _run_wandb_sync(
    argv: Sequence[str], cwd: Path, timeout_s: float, env: Mapping[str, str] | None
) -> tuple[str, str | None]:
    """One ``wandb sync`` call: ``(its output, None)``, or ``(output, why it failed)``.

    It runs in its own session; on a timeout, Ctrl-C or any other way out, its whole group is
    stopped before this returns or raises, so no upload goes on behind sweepherd's back (and
    beside the next ``sweepherd sync`` once the lock is released).
    """
    proc: subprocess.Popen[str] | None = None
    try:
        # A Ctrl-C inside Popen, after the fork, would leave the child without a handle to stop
        # it by: held back until Popen has returned, then acted on like one during the upload.
        with _interrupt_held() as interrupted:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,  # wandb sync writes wandb/debug-cli.*.log under its cwd
                env=_sync_env(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
        if interrupted:
            raise KeyboardInterrupt
        output, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        if proc is not None:
            _stop_group(proc, grace_s=0.0)
        return "", f"wandb sync took longer than {timeout_s:g} s (is the server reachable?)"
    except OSError as exc:
        if proc is None:
            return "", f"could not start wandb sync: {exc.strerror or exc}"
        _stop_group(proc, grace_s=_INTERRUPT_GRACE_S)
        raise
    except BaseException:
        if proc is not None:
            _stop_group(proc, grace_s=_INTERRUPT_GRACE_S)
        raise
    if proc.returncode != 0:
        return output, f"wandb sync exited with status {proc.returncode}: {_tail(output)}"
    return output, None


@contextlib.contextmanager
def _interrupt_held() -> Iterator[list[int]]:
    """SIGINT while the body runs is noted in the yielded list instead of raised (main thread
    only: elsewhere Python delivers no signal, and the list stays empty)."""
    held: list[int] = []
    with handling([signal.SIGINT], lambda signum, frame: held.append(signum)):
        yield held


def _stop_group(proc: subprocess.Popen[str], grace_s: float) -> None:
    """SIGTERM ``proc``'s group, SIGKILL it after ``grace_s``, and reap ``proc``."""
    for sig in (signal.SIGTERM, signal.SIGKILL) if grace_s > 0 else (signal.SIGKILL,):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.communicate(timeout=grace_s if sig == signal.SIGTERM else None)
            return
        except subprocess.TimeoutExpired:
            continue


def write_marker(
    item: SyncItem, files: Mapping[str, str], *, project: str | None, entity: str | None
) -> Path:
    """Write ``<run dir>/.synced`` (tmp + rename); return its path."""
    doc = {
        "run_id": item.run_id,
        "state": item.state.value,
        "synced_at": time.time(),
        "project": project,
        "entity": entity,
        "files": {_relative(Path(p), item.run_dir): how for p, how in files.items()},
    }
    path = item.run_dir / MARKER_NAME
    tmp = path.with_name(f"{MARKER_NAME}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WandbError(
            f"Synced run {item.run_id} but could not write {path}: {exc.strerror or exc}.",
            hint="Check that the sweep directory is writable; otherwise the run is sent again.",
        ) from exc
    return path


def read_marker(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``.synced`` marker, or ``None`` when it has not been synced."""
    try:
        doc = json.loads((run_dir / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


# -- helpers -----------------------------------------------------------------------------------


def _sync_env(env: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(os.environ if env is None else env)
    for name in _TRIAL_VARS:
        out.pop(name, None)
    return out


def _wandb_marked(path: Path) -> bool:
    return path.with_name(path.name + ".synced").exists()


def _sent(path: Path) -> bool:
    """``path`` needs no upload: wandb marked it, sweepherd marked it as sent up to its torn
    tail, or it lies in an online run's folder (``run-*``: uploaded while it ran)."""
    return (
        _wandb_marked(path)
        or path.with_name(path.name + _SENT_SUFFIX).exists()
        or not path.parent.name.startswith("offline-")
    )


def _mark_sent(path: Path) -> None:
    """Remember that wandb sent ``path`` as far as it could (its tail is torn)."""
    with contextlib.suppress(OSError):  # not marked: it is sent again next time, nothing lost
        path.with_name(path.name + _SENT_SUFFIX).write_text(f"{time.time()}\n")


def _only_incomplete_tail(output: str, path: Path) -> bool:
    """wandb's complaint about ``path`` is only that its last record is incomplete."""
    lines = [line for line in output.splitlines() if path.parent.name in line and "ERROR" in line]
    return bool(lines) and all("incomplete record" in line for line in lines)


def _tail(output: str, n_lines: int = 6) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n_lines:]) if lines else "(no output)"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class _SyncLock:
    """One ``sweepherd sync`` per sweep: ``sync.lock`` made with O_EXCL, holding host and pid.

    A lock left by a dead process on this host is taken over; one held from another host
    must be removed by hand if its process is gone.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.host = socket.gethostname()

    def __enter__(self) -> _SyncLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    self.path.unlink(missing_ok=True)
                    continue
                raise WandbError(
                    f"Another `sweepherd sync` of this sweep is running ({self._owner()}).",
                    hint=f"Wait for it, or remove {self.path} if that process is gone.",
                ) from None
            except OSError as exc:
                raise WandbError(
                    f"Could not create {self.path}: {exc.strerror or exc}.",
                    hint="Check that the sweep directory is writable.",
                ) from exc
            with os.fdopen(fd, "w") as f:
                json.dump({"host": self.host, "pid": os.getpid(), "t": time.time()}, f)
            return self
        raise WandbError(f"Could not take {self.path}; another sync keeps taking it.")

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _owner(self) -> str:
        doc = self._read()
        return f"pid {doc.get('pid')} on {doc.get('host')}"

    def _stale(self) -> bool:
        doc = self._read()
        if doc.get("host") != self.host or not isinstance(doc.get("pid"), int):
            return False
        try:
            os.kill(doc["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
