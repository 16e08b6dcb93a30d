"""A transaction on the journal: a fresh snapshot under the lock, buffered events, one append.

A :class:`Transaction` is only made by :meth:`SweepStore.transaction`, which holds the journal
lock for its whole life. Each operation checks its rule against the transaction's state, builds
the event, folds it into that state at once (so :attr:`Transaction.snapshot` shows it) and
buffers its line. When the ``with`` block ends without an exception, the lines are written in
one append (one write, one fsync); on an exception nothing is written.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sweepherd.errors import StoreError
from sweepherd.runs import Run, RunState
from sweepherd.store._fold import FoldState, Snapshot, result_applies
from sweepherd.store._journal import encode_event
from sweepherd.store._requests import RunResult


class Transaction:
    """Buffered changes to a sweep, applied atomically when the ``with`` block exits."""

    def __init__(self, sweep_id: str, state: FoldState) -> None:
        self.sweep_id = sweep_id
        self._state = state
        self._lines: list[bytes] = []
        self._snapshot: Snapshot | None = None
        #: Tokens of the claim requests answered so far (by a claim or a reply).
        self.answered: set[str] = set()
        #: The lock token of the hold serving claim requests: answers carry it as ``by``, so a
        #: requester can wait for that hold to end (its append is durable then).
        self.holder: str | None = None

    @property
    def snapshot(self) -> Snapshot:
        """The sweep's state under the lock, including this transaction's buffered operations."""
        if self._snapshot is None:
            self._snapshot = self._state.snapshot()
        return self._snapshot

    @property
    def n_pending(self) -> int:
        """How many events are buffered."""
        return len(self._lines)

    def encoded(self) -> bytes:
        """The buffered events as journal lines (what the store will append)."""
        return b"".join(self._lines)

    # -- operations ----------------------------------------------------------------------------

    def claim_new(
        self,
        params: Mapping[str, Any],
        agent: str,
        node: str | None = None,
        gpus: str | None = None,
        job: str | None = None,
        *,
        req: str | None = None,
    ) -> Run:
        """Create a new run with ``params``, held by ``agent``; its id is ``<sweep>-<seq:04d>``.

        ``req``: the token of the claim request this answers (see :meth:`take_requests`).
        """
        seq = self._state.next_seq
        run_id = f"{self.sweep_id}-{seq:04d}"
        event: dict[str, Any] = {
            "e": "claim",
            "t": _now(),
            "run": run_id,
            "seq": seq,
            "attempt": 1,
            "params": dict(params),
            "agent": agent,
        }
        _put_where(event, node, gpus, job, req)
        self._push(event)
        return self._state.runs[run_id]

    def claim_again(
        self,
        run_id: str,
        agent: str,
        node: str | None = None,
        gpus: str | None = None,
        job: str | None = None,
        *,
        req: str | None = None,
    ) -> Run:
        """Start a preempted or lost run again (same id, same params, ``attempt + 1``)."""
        run = self._run(run_id)
        if not run.state.is_rerunnable:
            raise StoreError(
                f"Run {run_id} is {run.state.value}; only preempted or lost runs can be "
                "claimed again."
            )
        event: dict[str, Any] = {
            "e": "claim",
            "t": _now(),
            "run": run_id,
            "seq": run.seq,
            "attempt": run.attempt + 1,
            "agent": agent,
        }
        _put_where(event, node, gpus, job, req)
        self._push(event)
        return self._state.runs[run_id]

    def finish(
        self,
        run_id: str,
        attempt: int,
        state: RunState | str,
        exit_code: int | None = None,
        metric: float | None = None,
        summary: Mapping[str, Any] | None = None,
        reason: str | None = None,
        *,
        metric_range: tuple[float, float] | None = None,
        metric_last: float | None = None,
        timeout: bool = False,
        req: str | None = None,
    ) -> bool:
        """Record how ``attempt`` of a run ended; False (nothing written) for a duplicate.

        ``state`` is any state but ``running``: a terminal one, or ``preempted``. The first
        terminal result wins; a result for an older attempt counts only if it is ``finished``
        and the run is not terminal yet (see :func:`~sweepherd.store.result_applies`).
        ``timeout``: preempted by the job's time limit with no checkpoint kept (it counts
        toward :data:`~sweepherd.runs.MAX_TIMEOUTS`).
        """
        result_state = RunState(state)
        if result_state is RunState.RUNNING:
            raise StoreError(f"finish() needs the state the run ended in, not {state!r}.")
        run = self._state.runs.get(run_id)
        if run is None or not result_applies(run, attempt, result_state):
            return False
        event: dict[str, Any] = {
            "e": "end",
            "t": _now(),
            "run": run_id,
            "attempt": attempt,
            "state": result_state.value,
        }
        if exit_code is not None:
            event["exit_code"] = exit_code
        if metric is not None:
            event["metric"] = metric
        if summary is not None:
            event["summary"] = dict(summary)
        if reason is not None:
            event["reason"] = reason
        if metric_range is not None:
            event["range"] = list(metric_range)
        if metric_last is not None:
            event["last"] = metric_last
        if timeout and result_state is RunState.PREEMPTED:
            event["timeout"] = True
        if req is not None:
            event["req"] = req
        self._push(event)
        return True

    def record(self, result: RunResult, *, req: str | None = None) -> bool:
        """:meth:`finish` with a :class:`RunResult`."""
        return self.finish(
            result.run_id,
            result.attempt,
            result.state,
            exit_code=result.exit_code,
            metric=result.metric,
            summary=result.summary,
            reason=result.reason,
            metric_range=result.metric_range,
            metric_last=result.metric_last,
            timeout=result.timeout,
            req=req,
        )

    def mark_lost(self, run_id: str, reason: str, *, req: str | None = None) -> bool:
        """Declare a running run lost (its agent went silent); False if it is not running."""
        run = self._run(run_id)
        if run.state is not RunState.RUNNING:
            return False
        event = {"e": "lost", "t": _now(), "run": run_id, "attempt": run.attempt, "reason": reason}
        if req is not None:
            event["req"] = req
        self._push(event)
        return True

    def reply(self, req: str, reason: str, **info: Any) -> None:
        """Answer claim request ``req`` with no run, saying why (the sweep is done...).

        ``info`` adds fields for the requester (plain JSON values), e.g. ``n_running``.
        """
        self._push({"e": "reply", "t": _now(), "req": req, "reason": reason, **info})

    def cancel(self, reason: str | None = None) -> bool:
        """Cancel the sweep: no new runs start. False if it was already cancelled."""
        if self._state.cancelled:
            return False
        event: dict[str, Any] = {"e": "cancel", "t": _now()}
        if reason is not None:
            event["reason"] = reason
        self._push(event)
        return True

    def record_agent(
        self,
        agent_id: str,
        event: str = "start",
        *,
        node: str | None = None,
        host: str | None = None,
        pid: int | None = None,
        job: str | None = None,
        slots: int | None = None,
    ) -> None:
        """Record that an agent started (``event="start"``) or stopped cleanly (``"stop"``)."""
        if event not in ("start", "stop"):
            raise StoreError(f"An agent event is 'start' or 'stop', not {event!r}.")
        line: dict[str, Any] = {"e": "agent", "t": _now(), "agent": agent_id, "event": event}
        for key, value in (("node", node), ("host", host), ("pid", pid), ("job", job)):
            if value is not None:
                line[key] = value
        if slots is not None:
            line["slots"] = slots
        self._push(line)

    def record_job(self, job_id: str, **info: Any) -> None:
        """Record a Slurm job (submitted, its array, nodes...); fields merge across events."""
        self._push({"e": "job", "t": _now(), "job": job_id, **info})

    # -- internals -----------------------------------------------------------------------------

    def _run(self, run_id: str) -> Run:
        try:
            return self._state.runs[run_id]
        except KeyError:
            raise StoreError(f"Sweep {self.sweep_id} has no run {run_id!r}.") from None

    def _push(self, event: dict[str, Any]) -> None:
        answer = event["e"] in ("claim", "reply") and "req" in event
        if answer and self.holder is not None:
            event["by"] = self.holder
        try:
            line = encode_event(event)
        except (TypeError, ValueError) as err:
            raise StoreError(
                f"Cannot record a {event['e']!r} event: {err}.",
                hint="Values must be plain JSON types (str, int, float, bool, list, dict).",
            ) from err
        # Fold what a reader will read back (tuples become lists...), so both agree exactly.
        if not self._state.apply(json.loads(line)):
            raise StoreError(f"Internal error: event {line!r} does not apply to the sweep.")
        self._lines.append(line)
        if answer:
            self.answered.add(str(event["req"]))
        self._snapshot = None


def _now() -> float:
    return round(time.time(), 6)


def _put_where(
    event: dict[str, Any], node: str | None, gpus: str | None, job: str | None, req: str | None
) -> None:
    for key, value in (("node", node), ("gpus", gpus), ("job", job), ("req", req)):
        if value is not None:
            event[key] = value
