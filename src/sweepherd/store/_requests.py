"""Claim requests: how many agents asking at once are served by one lock hold and one fsync.

When hundreds of agents ask for a run in the same second, taking the lock once per agent makes
them queue: each waits for every hold before its own. Instead (flat combining), an agent that
wants a run first *posts* its request as a small file in ``requests/`` and then, while it waits,
tries the lock. Whoever gets the lock serves every request posted so far in one transaction
(one write, one fsync) and tags each answer with the request's token; the others see their
answer appear in the journal. See :meth:`sweepherd.store.SweepStore.request_claim`.

Safety, with files only:

- A holder *takes* a request by renaming ``<token>.json`` to ``<token>.json.taken``; a requester
  that gives up *withdraws* by removing ``<token>.json``. Exactly one of the two succeeds, so a
  withdrawn request is never answered and a taken one is never withdrawn: its owner then waits
  for the answer that the holder appends before it releases the lock.
- Taken requests are removed only after their answers are appended. If serving fails (the disk
  is full, a bug), the others' requests are put back for the next holder and the holder's own
  caller gets the error. A holder that dies after taking requests leaves ``.taken`` files that no
  one serves (removed once an hour old); their owners notice when they hold the lock themselves
  and find their request neither answered nor waiting, and serve it then.
- Requests are not fsynced: after a machine crash a lost request is just asked again.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweepherd.runs import Run, RunState
from sweepherd.store._files import store_error, write_atomic

_TAKEN = ".taken"
_TAKEN_GC_S = 3600.0


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


class Mailbox:
    """The ``requests/`` folder of a sweep."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def post(self, request: ClaimRequest) -> None:
        """Leave ``request`` for whoever holds the lock next."""
        path = self.dir / f"{request.token}.json"
        try:
            write_atomic(path, request.to_bytes(), durable=False)
        except Exception:
            if self.dir.is_dir():
                raise
            try:  # a sweep directory made before requests/ existed
                self.dir.mkdir(exist_ok=True)
            except OSError as err:
                raise store_error("creating", self.dir, err) from err
            write_atomic(path, request.to_bytes(), durable=False)

    def take_all(self) -> list[ClaimRequest]:
        """Take every posted request (oldest first). Only call while holding the lock."""
        try:
            names = [p.name for p in self.dir.iterdir()]
        except FileNotFoundError:
            return []
        except OSError as err:
            raise store_error("listing", self.dir, err) from err
        taken = []
        for name in names:
            if name.startswith("."):
                continue
            path = self.dir / name
            if name.endswith(_TAKEN):
                _remove_if_older(path, _TAKEN_GC_S)
                continue
            if not name.endswith(".json"):
                continue
            target = path.with_name(name + _TAKEN)
            try:
                path.rename(target)
            except FileNotFoundError:
                continue  # withdrawn just now
            except OSError as err:
                raise store_error("taking the request", path, err) from err
            try:
                request = ClaimRequest.from_bytes(target.read_bytes())
            except OSError:
                request = None
            if request is None:
                target.unlink(missing_ok=True)
                continue
            taken.append(request)
        taken.sort(key=lambda r: (r.t, r.token))
        return taken

    def settle(self, requests: Iterable[ClaimRequest]) -> None:
        """Remove taken requests once their answers are in the journal."""
        for request in requests:
            with contextlib.suppress(OSError):
                (self.dir / f"{request.token}.json{_TAKEN}").unlink()

    def put_back(self, requests: Sequence[ClaimRequest]) -> None:
        """Return taken requests to the mailbox (serving them failed)."""
        for request in requests:
            src = self.dir / f"{request.token}.json{_TAKEN}"
            with contextlib.suppress(OSError):
                src.rename(self.dir / f"{request.token}.json")

    def withdraw(self, token: str) -> bool:
        """Remove a posted request; False if a holder has already taken it."""
        try:
            (self.dir / f"{token}.json").unlink()
        except FileNotFoundError:
            return False
        except OSError:
            return False
        return True


def _remove_if_older(path: Path, age_s: float) -> None:
    with contextlib.suppress(OSError):
        if time.time() - path.stat().st_mtime > age_s:
            path.unlink()
