"""Claim requests: how many agents asking at once are served by one lock hold and one fsync.

When hundreds of agents ask for a run in the same second, taking the lock once per agent makes
them queue: each waits for every hold before its own. Instead (flat combining), an agent that
wants a run first *posts* its request as a small file in ``requests/`` and then, while it waits,
tries the lock. Whoever gets the lock serves every request posted so far in one transaction
(one write, one fsync) and tags each answer with the request's token; the others see their
answer appear in the journal. See :meth:`sweepherd.store.SweepStore.request_claim`.

Safety, with files only:

- A request is one file, ``requests/<token>.json``, made with an exclusive create. A holder
  *takes* a request by reading and then removing it; a requester that gives up *withdraws* by
  removing it. Exactly one of the two removals succeeds, so a withdrawn request is never
  answered and a taken one is never withdrawn: its owner then waits for the answer, which the
  holder appends before it releases the lock.
- If serving fails (the disk is full, a bug), the holder posts the others' requests again for
  the next holder, and its own caller gets the error. A failed fsync comes after the write, so
  a requester may already have read its answer: the holder truncates the append before it
  releases the lock, and a requester takes an answer only once the hold that wrote it (named
  in the answer's ``by``) has ended and the journal, read again, did not change beneath it.
  If the truncation fails too (``JournalUndoError``), the answers may stand: the requests are
  not posted again, and their owners take the answers or time out and ask anew.
  A holder that dies after taking requests loses them: each owner notices when it holds the
  lock itself and finds its request neither answered nor waiting, and serves it then.
- Requests are not fsynced: after a machine crash a lost request is just asked again.
- A request whose owner died before it was served still gets a run; that run is then lost
  (its agent is silent) and run again after the grace period, like any run of a dead agent.
- A requester that fails while waiting (an unreadable journal, an interrupt) withdraws its
  request. The one window left: a holder took it just before, and answers with a run that the
  still-living requester never learns of; that run stays "running" until that agent stops
  (its stop event then marks it lost). Agents do not raise while waiting in normal operation.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweepherd.errors import StoreError
from sweepherd.runs import Run, RunState
from sweepherd.store._files import store_error
from sweepherd.store._fold import parse_range

_GARBAGE_S = 3600.0  # an unreadable request file older than this is removed


@dataclass(frozen=True)
class RunResult:
    """How one attempt of a run ended, as an agent reports it (see ``Transaction.finish``)."""

    run_id: str
    attempt: int
    state: RunState
    exit_code: int | None = None
    metric: float | None = None
    summary: Mapping[str, Any] | None = None
    reason: str | None = None
    metric_range: tuple[float, float] | None = None
    metric_last: float | None = None  # the last finite value of the metric in the history
    #: Preempted by the job's time limit with no checkpoint kept (counts toward MAX_TIMEOUTS).
    timeout: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run": self.run_id,
            "attempt": self.attempt,
            "state": RunState(self.state).value,
        }
        for key, value in (
            ("exit_code", self.exit_code),
            ("metric", self.metric),
            ("summary", self.summary),
            ("reason", self.reason),
            ("range", None if self.metric_range is None else list(self.metric_range)),
            ("last", self.metric_last),
            ("timeout", True if self.timeout else None),
        ):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RunResult:
        summary = raw.get("summary")
        return cls(
            run_id=str(raw["run"]),
            attempt=int(raw["attempt"]),
            state=RunState(raw["state"]),
            exit_code=None if raw.get("exit_code") is None else int(raw["exit_code"]),
            metric=None if raw.get("metric") is None else float(raw["metric"]),
            summary=None if summary is None else dict(summary),
            reason=None if raw.get("reason") is None else str(raw["reason"]),
            metric_range=parse_range(raw.get("range")),
            metric_last=None if raw.get("last") is None else float(raw["last"]),
            timeout=raw.get("timeout") is True,
        )


@dataclass(frozen=True)
class ClaimRequest:
    """An agent asking for its next run, with the results it has to report first."""

    token: str  # unique; every event written in answer carries it as "req"
    agent: str
    node: str | None = None
    gpus: str | None = None
    job: str | None = None
    results: tuple[RunResult, ...] = ()
    t: float = 0.0  # when it was asked (for serving the oldest first)

    def to_bytes(self) -> bytes:
        raw = {
            "token": self.token,
            "agent": self.agent,
            "node": self.node,
            "gpus": self.gpus,
            "job": self.job,
            "t": self.t,
            "results": [r.to_json() for r in self.results],
        }
        return json.dumps(raw, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ClaimRequest | None:
        """The request in ``data``, or None if it is not one."""
        try:
            raw = json.loads(data)
            return cls(
                token=str(raw["token"]),
                agent=str(raw["agent"]),
                node=None if raw.get("node") is None else str(raw["node"]),
                gpus=None if raw.get("gpus") is None else str(raw["gpus"]),
                job=None if raw.get("job") is None else str(raw["job"]),
                results=tuple(RunResult.from_json(r) for r in raw.get("results", ())),
                t=float(raw.get("t", 0.0)),
            )
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class ClaimAnswer:
    """How a claim request was answered."""

    events: list[dict[str, Any]]  # the journal events tagged with the request's token
    run: Run | None  # the run it got
    reason: str | None  # why it got none

    @property
    def reply(self) -> dict[str, Any] | None:
        """The ``reply`` event when the request got no run (with any extra fields)."""
        return next((e for e in reversed(self.events) if e["e"] == "reply"), None)


class Mailbox:
    """The ``requests/`` folder of a sweep."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def post(self, request: ClaimRequest) -> None:
        """Leave ``request`` for whoever holds the lock next (one exclusive create + write)."""
        path = self.dir / f"{request.token}.json"
        data = request.to_bytes()
        try:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileNotFoundError:  # a sweep directory made before requests/ existed
                self.dir.mkdir(exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, "short write: no space left on device")
            finally:
                os.close(fd)
        except OSError as err:
            with contextlib.suppress(OSError):
                path.unlink()
            raise store_error("posting a claim request in", self.dir, err) from err

    def take_all(self) -> list[ClaimRequest]:
        """Take every posted request (oldest first). Only call while holding the lock.

        Taking is removing: a request's file is read, then removed; if the removal fails, its
        owner withdrew it meanwhile and it is not served. A file that does not parse is being
        written right now (it is left for the next holder) or is garbage (removed when old).
        """
        try:
            names = [p.name for p in self.dir.iterdir()]
        except FileNotFoundError:
            return []
        except OSError as err:
            raise store_error("listing", self.dir, err) from err
        taken = []
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            path = self.dir / name
            try:
                request = ClaimRequest.from_bytes(path.read_bytes())
            except OSError:
                continue  # withdrawn just now
            if request is None:
                _remove_if_older(path, _GARBAGE_S)
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue  # withdrawn just now
            except OSError as err:
                raise store_error("taking the request", path, err) from err
            taken.append(request)
        taken.sort(key=lambda r: (r.t, r.token))
        return taken

    def put_back(self, requests: Sequence[ClaimRequest]) -> None:
        """Post taken requests again (serving them failed)."""
        for request in requests:
            with contextlib.suppress(StoreError):
                self.post(request)

    def withdraw(self, token: str) -> bool:
        """Remove a posted request; False if a holder has already taken it."""
        try:
            (self.dir / f"{token}.json").unlink()
        except OSError:
            return False
        return True


def _remove_if_older(path: Path, age_s: float) -> None:
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > age_s:
            path.unlink()
