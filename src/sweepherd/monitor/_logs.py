"""A run's output: finding the run, cutting one attempt out of its logs, following it live.

The agent appends every attempt of a run to the same ``stdout.log`` / ``stderr.log``; before
each attempt after the first it writes a banner line ``--- sweepherd: attempt N on NODE at
TIME ---``. Attempt ``N`` is the text from its banner (or the start, for attempt 1) up to the
next banner.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

from sweepherd.errors import StoreError
from sweepherd.monitor._follow import ChangeWatcher, FileFollower, IoStats
from sweepherd.runs import Run, RunState
from sweepherd.store import Snapshot, SweepStore

_BANNER = re.compile(rb"^--- sweepherd: attempt (\d+) .*---\r?$", re.MULTILINE)


def resolve_run(snapshot: Snapshot, sweep_id: str, ref: str) -> Run:
    """The run ``ref`` names: its full id, or its number (``7`` or ``0007`` for ``<sweep>-0007``).

    Raises a one-line :class:`StoreError` naming the runs there are when there is no such run.
    """
    ref = ref.strip()
    run = snapshot.runs.get(ref)
    if run is None and ref.isdigit():
        run = snapshot.runs.get(f"{sweep_id}-{int(ref):04d}")
    if run is not None:
        return run
    if not snapshot.runs:
        raise StoreError(f"Sweep {sweep_id} has no run {ref!r}: it has no runs yet.")
    ids = list(snapshot.runs)
    span = ids[0] if len(ids) == 1 else f"{ids[0]} … {ids[-1]}"
    raise StoreError(
        f"Sweep {sweep_id} has no run {ref!r} (its runs are {span}).",
        hint=f"Name a run by its id or its number; `sweepherd status {sweep_id}` lists them.",
    )


def log_path(store: SweepStore, run: Run, *, stderr: bool = False) -> Path:
    """The run's ``stdout.log`` (or ``stderr.log``); it may not exist yet."""
    return store.runs_dir / run.id / ("stderr.log" if stderr else "stdout.log")


def attempt_slice(data: bytes, attempt: int) -> bytes:
    """The part of a log written by ``attempt`` (banner line included for attempts > 1)."""
    starts = {int(m.group(1)): m.start() for m in _BANNER.finditer(data)}
    if attempt == 1:
        begin = 0
    elif attempt in starts:
        begin = starts[attempt]
    else:
        return b""
    later = [pos for pos in starts.values() if pos > begin]
    return data[begin : min(later)] if later else data[begin:]


def check_attempt(run: Run, attempt: int | None) -> None:
    """A clear error when ``attempt`` is not one of the run's attempts."""
    if attempt is not None and not 1 <= attempt <= run.attempt:
        have = "1" if run.attempt == 1 else f"1 to {run.attempt}"
        raise StoreError(f"Run {run.id} has no attempt {attempt}: its attempts are {have}.")


def follow_log(
    store: SweepStore,
    run: Run,
    write: Callable[[bytes], None],
    *,
    stderr: bool = False,
    attempt: int | None = None,
    follow: bool = False,
    interval_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    stats: IoStats | None = None,
) -> Run:
    """Write the run's log (or one ``attempt`` of it); with ``follow``, keep writing what the
    run appends until it stops running. Returns the run as last seen.

    Following polls every ``interval_s``: a ``stat`` of the log and of the journal, reading
    only new bytes. It ends when the run is no longer running (finished, failed, preempted...)
    or, with ``attempt``, when that attempt is over.
    """
    check_attempt(run, attempt)
    path = log_path(store, run, stderr=stderr)
    follower = FileFollower(path, stats)
    data = follower.read_new()
    if not data and not path.exists() and not (follow and run.state is RunState.RUNNING):
        raise StoreError(
            f"Run {run.id} has no {path.name} in {path.parent}.",
            hint="Its command has not started yet, or the run folder was removed.",
        )
    if attempt is not None:
        data = attempt_slice(data, attempt)
    if data:
        write(data)
    if not follow or attempt not in (None, run.attempt):
        return run
    watched = run.attempt
    journal = ChangeWatcher(store.journal_path, stats)
    journal.changed()

    def going(r: Run) -> bool:
        return r.state is RunState.RUNNING and (attempt is None or r.attempt == watched)

    while going(run):
        sleep(interval_s)
        if journal.changed():
            run = store.snapshot().runs[run.id]
        data = follower.read_new()  # after the state: what the run wrote before it ended
        if attempt is not None:
            data = until_next_attempt(data, watched)
        if data:
            write(data)
    return run


def until_next_attempt(data: bytes, attempt: int) -> bytes:
    """``data`` up to the banner of an attempt after ``attempt``, if one starts in it."""
    for match in _BANNER.finditer(data):
        if int(match.group(1)) > attempt:
            return data[: match.start()]
    return data
