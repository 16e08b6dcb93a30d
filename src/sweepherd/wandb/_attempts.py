"""Which wandb logs each attempt of a run wrote, as the agent that ran it found them.

A run's attempts all log under its one run id into the same folder, each in its own
``offline-run-*`` folder, and ``sweepherd sync`` sends them in start order so W&B joins them.
That is right for a run preempted and resumed; it is wrong where an earlier attempt's result
ended the run: an agent declared lost that was only cut off may finish its attempt after all
while another agent runs the run again. That late result stands, and the attempts after it
(the one stopped for it, and any preempted in between) must not be sent after it, or their
partial history and summary would become the W&B run's.

So when a trial ends, for whatever reason, its agent writes ``<run dir>/.attempts/<n>.json``
naming the logs of attempt ``n``: those that appeared while it ran, whose run record says they
were started on its machine after it was, and whose wandb debug log names its process
(:func:`logs_started_here`). The sync leaves out the logs that only attempts after the
result's claim (:func:`later_attempt_logs`), waiting while the last attempt's agent is still
stopping it (:func:`awaits_last_attempt`). Where it cannot be sure, it sends: a log the
result's attempt also claims (two attempts of the run at once on one machine, where wandb's
debug log did not tell them apart), or any log when the result's attempt left no record. A
partial attempt sent last is the lesser harm; a result not uploaded the greater.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweepherd.errors import SweepherdError
from sweepherd.runs import Run
from sweepherd.wandb._proctree import descendants
from sweepherd.wandb._txlog import run_record

if TYPE_CHECKING:
    from sweepherd.store import Heartbeat

#: wandb 0.2x-0.31 writes this among the first lines of a run's ``logs/debug.log``.
_PID_LINE = re.compile(rb"Configure stats pid to (\d+)")
#: The folder of a run's folder that holds one record per ended attempt.
ATTEMPTS_DIR = ".attempts"
#: A heartbeat older than this: the agent is taken for gone (it will write no record).
AGENT_GONE_S = 120.0
#: The longest a sync waits for the last attempt's record after the run ended, agent alive
#: (its trial gets the agent's --stop-grace, 30 s by default, to stop).
MAX_WAIT_S = 600.0


def logs_started_here(
    paths: Iterable[Path], *, since: float, host: str | None = None, pid: int | None = None
) -> list[Path]:
    """Those of ``paths`` whose run record says wandb started them on ``host`` (this machine by
    default) at or after unix time ``since`` (less a second for clock rounding), and, given
    ``pid``, in that process, as wandb's own ``logs/debug.log`` beside them says. A log whose
    start or process cannot be read (no run record yet, not a transaction log, no wandb here)
    is left out: only what is surely an attempt's is ever kept from the upload.
    """
    host = socket.gethostname() if host is None else host
    found = []
    for path in paths:
        start = _start_on(path, host)
        if start is None or start < since - 1.0:
            continue
        if pid is not None and _wandb_pid(path) != pid:
            continue  # another process (or one wandb's log does not name): not surely ours
        found.append(path)
    return found


class AttemptLogs:
    """Which of a run's wandb logs an agent reads as its trial's (``RunLogReader``'s accept).

    The logs of earlier attempts, there when the trial started, are read: a resumed run's
    history goes on from them, as on W&B. A log that appears later is the trial's when wandb's
    debug log beside it names the trial's process or one below it (a script started by a
    shell). Otherwise it is read only while no later attempt of the run exists
    (:attr:`superseded`, which the agent sets as it learns of one): an agent declared lost that
    was only cut off may finish its attempt while another agent runs the run again in the same
    folder, and its result must not take that attempt's metric and summary.
    """

    def __init__(self, pid: int, earlier: Iterable[Path]) -> None:
        self.pid = pid
        #: The earlier attempts' logs, each to be read only as far as it went when this
        #: attempt started: one whose trial lives on (its agent was cut off) still grows.
        self.earlier = {path: _size(path) for path in earlier}
        self.superseded = False
        self._tree: set[int] = {pid}  # the trial's processes, as last seen

    def note_later_attempt(self) -> None:
        """A later attempt of the run exists: from now on only logs of this trial's processes
        (those running now are remembered, as they may end before their log is looked at).
        Told again, it does nothing: the agent tells it on every look at the journal."""
        if self.superseded:
            return
        self.superseded = True
        self._tree.update(descendants(self.pid))

    def __call__(self, path: Path) -> bool | None:
        """True to read ``path``, False to leave it out; None: not known yet, ask again."""
        if path in self.earlier:
            return True
        pid = _wandb_pid(path)
        if pid is not None and (pid in self._tree or pid in descendants(self.pid)):
            return True
        if not self.superseded:
            return True  # no other attempt could have written it
        return None if pid is None else False  # wandb may not have named its process yet

    def end_of(self, path: Path) -> int | None:
        """How far to read ``path``: an earlier attempt's log only as far as it went."""
        return self.earlier.get(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def record_attempt_logs(run_dir: Path, attempt: int, logs: Iterable[Path]) -> bool:
    """Write ``<run dir>/.attempts/<attempt>.json``: attempt ``attempt`` wrote ``logs`` (found
    under ``run_dir``). False when it could not be written (then that attempt's logs are sent
    like any other's): the record is a hint for the upload, not the result."""
    doc = {
        "attempt": attempt,
        "ended_at": time.time(),
        "host": socket.gethostname(),
        "logs": [str(p.relative_to(run_dir)) for p in logs],
    }
    folder = run_dir / ATTEMPTS_DIR
    tmp = folder / f".{attempt}.{os.getpid()}.tmp"
    try:
        folder.mkdir(exist_ok=True)
        tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        tmp.replace(folder / f"{attempt}.json")
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False
    return True


def attempt_records(run_dir: Path) -> dict[int, dict[str, Any]]:
    """The run's attempt records by attempt number (unreadable ones left out)."""
    records: dict[int, dict[str, Any]] = {}
    try:
        files = list((run_dir / ATTEMPTS_DIR).glob("*.json"))
    except OSError:
        return records
    for file in files:
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
            records[int(doc["attempt"])] = doc
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return records


def has_later_attempts(run: Run) -> bool:
    """The run ended with an earlier attempt's result than its last attempt's."""
    return (
        run.state.is_terminal
        and run.result_attempt is not None
        and run.result_attempt < run.attempt
    )


def awaits_last_attempt(
    run: Run,
    records: Mapping[int, Mapping[str, Any]],
    heartbeats: Mapping[str, Heartbeat] | None,
    now: float,
) -> bool:
    """True while a sync should wait for the last attempt's record (``records``: the run's
    :func:`attempt_records`): the run ended with an earlier attempt's result, which recorded
    its logs, the last attempt wrote none yet, and its agent is alive (it is stopping that
    attempt) and was not waited for longer than :data:`MAX_WAIT_S`."""
    if not has_later_attempts(run):
        return False
    if run.attempt in records or run.result_attempt not in records:
        return False  # recorded already; or nothing could be left out anyway
    if run.ended_at is not None and now - run.ended_at > MAX_WAIT_S:
        return False
    beat = (heartbeats or {}).get(run.agent or "")
    return beat is not None and beat.state != "exited" and beat.age_s(now) < AGENT_GONE_S


def later_attempt_logs(
    run: Run, run_dir: Path, records: Mapping[int, Mapping[str, Any]]
) -> set[Path]:
    """The logs only attempts after the one whose result the run holds claim (``records``:
    the run's :func:`attempt_records`); empty unless an earlier attempt's result ended it, and
    empty when that attempt left no record."""
    if not has_later_attempts(run):
        return set()
    assert run.result_attempt is not None
    if run.result_attempt not in records:
        return set()  # its logs are unknown: any log could be the result's
    claims: dict[Path, set[int]] = {}
    for attempt, doc in records.items():
        for rel in doc.get("logs", []):
            claims.setdefault(run_dir / str(rel), set()).add(attempt)
    return {p for p, by in claims.items() if min(by) > run.result_attempt}


def _start_on(path: Path, host: str) -> float | None:
    """When wandb started ``path`` (its run record), if it did so on ``host``."""
    try:
        record = run_record(path)
    except SweepherdError:  # unreadable, not a transaction log, or no wandb here
        return None
    if record is None or record.host != host:
        return None
    return record.start_time if record.start_time is not None else float("inf")


def _wandb_pid(log: Path) -> int | None:
    """The process that started ``log``, from wandb's debug log in the same run folder (its
    first lines name it); None when that cannot be read."""
    try:
        with (log.parent / "logs" / "debug.log").open("rb") as f:
            head = f.read(8192)
    except OSError:
        return None
    match = _PID_LINE.search(head)
    return int(match.group(1)) if match else None
