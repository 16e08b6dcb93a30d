"""Folding events into runs: every event type, and the duplicate rules readers and writers share."""

from __future__ import annotations

from typing import Any

import pytest

from sweepherd.runs import Run, RunState
from sweepherd.store import result_applies
from sweepherd.store._fold import FoldState


def _fold(*events: dict[str, Any]) -> FoldState:
    state = FoldState()
    for event in events:
        state.apply(event)
    return state


def _claim(run: str = "s-0000", seq: int = 0, attempt: int = 1, t: float = 10.0, **kw: Any):
    event = {"e": "claim", "t": t, "run": run, "seq": seq, "attempt": attempt, "agent": "a1", **kw}
    if attempt == 1:
        event.setdefault("params", {"x": seq})
    return event


_LOST = {"e": "lost", "t": 11, "run": "s-0000", "attempt": 1}


def _end(state: str, attempt: int = 1, run: str = "s-0000", t: float = 20.0, **kw: Any):
    return {"e": "end", "t": t, "run": run, "attempt": attempt, "state": state, **kw}


def test_created_sets_the_creation_time() -> None:
    assert _fold({"e": "created", "t": 5.0, "sweep": "s"}).created_at == 5.0


def test_claim_creates_a_running_run() -> None:
    state = _fold(_claim(node="n1", gpus="0,1", job="77"))
    run = state.runs["s-0000"]
    assert run == Run(
        id="s-0000",
        params={"x": 0},
        state=RunState.RUNNING,
        attempt=1,
        seq=0,
        agent="a1",
        node="n1",
        gpus="0,1",
        job="77",
        created_at=10.0,
        started_at=10.0,
    )
    assert state.next_seq == 1


def test_a_second_first_claim_of_the_same_run_is_ignored() -> None:
    state = FoldState()
    assert state.apply(_claim())
    assert not state.apply(_claim(agent="a2", params={"x": 99}))
    assert state.runs["s-0000"].agent == "a1"


def test_end_records_the_result() -> None:
    state = _fold(
        _claim(), _end("finished", exit_code=0, metric=0.25, summary={"loss": 0.25}, reason="ok")
    )
    run = state.runs["s-0000"]
    assert (run.state, run.exit_code, run.metric, run.ended_at) == (
        RunState.FINISHED,
        0,
        0.25,
        20.0,
    )
    assert run.summary == {"loss": 0.25} and run.reason == "ok"
    assert run.duration_s == 10.0
    assert run.metric_range is None  # a journal from before ranges were recorded
    ranged = _fold(_claim(), _end("finished", metric=0.5, range=[0.25, 3]))
    assert ranged.runs["s-0000"].metric_range == (0.25, 3.0)


def test_first_terminal_result_wins() -> None:
    state = _fold(_claim(), _end("failed", exit_code=1))
    assert not state.apply(_end("finished", exit_code=0))
    assert state.runs["s-0000"].state is RunState.FAILED


@pytest.mark.parametrize("old_state", ["failed", "stopped", "killed", "preempted"])
def test_an_older_attempts_non_finished_result_is_ignored(old_state: str) -> None:
    state = _fold(
        _claim(), {"e": "lost", "t": 11, "run": "s-0000", "attempt": 1}, _claim(attempt=2)
    )
    assert not state.apply(_end(old_state, attempt=1))
    assert state.runs["s-0000"].state is RunState.RUNNING


def test_an_older_attempts_finished_result_is_kept() -> None:
    # Declared lost (its agent looked silent), re-claimed, and then the first agent finished.
    state = _fold(
        _claim(), {"e": "lost", "t": 11, "run": "s-0000", "attempt": 1}, _claim(attempt=2)
    )
    assert state.apply(_end("finished", attempt=1, metric=1.0))
    run = state.runs["s-0000"]
    assert run.state is RunState.FINISHED and run.metric == 1.0
    assert (run.attempt, run.result_attempt) == (2, 1)  # sync leaves attempt 2's wandb data out
    assert not state.apply(_end("finished", attempt=2, metric=2.0))  # the re-run's is a duplicate
    assert state.runs["s-0000"].metric == 1.0
    assert state.runs["s-0000"].result_attempt == 1


def test_a_result_for_a_lost_attempt_not_yet_reclaimed_applies() -> None:
    state = _fold(_claim(), {"e": "lost", "t": 11, "run": "s-0000", "attempt": 1})
    assert state.apply(_end("failed", attempt=1, exit_code=3))
    assert state.runs["s-0000"].state is RunState.FAILED


def test_results_for_unknown_runs_or_future_attempts_are_ignored() -> None:
    state = _fold(_claim())
    assert not state.apply(_end("finished", run="s-9999"))
    assert not state.apply(_end("finished", attempt=2))
    assert not state.apply(_end("running"))
    assert state.runs["s-0000"].state is RunState.RUNNING


def test_preempted_then_claimed_again() -> None:
    state = _fold(_claim(), _end("preempted", metric=0.5), _claim(attempt=2, t=30.0, node="n2"))
    run = state.runs["s-0000"]
    assert (run.state, run.attempt, run.node, run.started_at) == (RunState.RUNNING, 2, "n2", 30.0)
    assert run.params == {"x": 0} and run.created_at == 10.0 and run.ended_at is None
    assert run.metric == 0.5  # the last known value stays until the new attempt reports


def test_claim_again_only_for_rerunnable_runs_and_the_next_attempt() -> None:
    state = _fold(_claim())
    assert not state.apply(_claim(attempt=2))  # still running
    state.apply(_end("preempted"))
    assert not state.apply(_claim(attempt=3))  # skips an attempt
    assert state.apply(_claim(attempt=2))
    assert not state.apply(_claim(attempt=2))  # a duplicate re-claim


def test_losses_count_the_attempts_declared_lost() -> None:
    state = _fold(_claim(), _LOST, _claim(attempt=2, t=30.0))
    assert state.runs["s-0000"].losses == 1 and state.runs["s-0000"].will_run_again is False
    state.apply({"e": "lost", "t": 31, "run": "s-0000", "attempt": 2})
    run = state.runs["s-0000"]
    assert (run.state, run.losses) == (RunState.LOST, 2)
    assert run.will_run_again and not run.gave_up
    state.apply(_end("preempted", attempt=2))  # a late report: not a loss, state as reported
    assert state.runs["s-0000"].losses == 2


def test_lost_applies_only_to_the_running_attempt() -> None:
    state = _fold(_claim())
    assert not state.apply({"e": "lost", "t": 11, "run": "s-0000", "attempt": 2})
    assert state.apply({"e": "lost", "t": 11, "run": "s-0000", "attempt": 1, "reason": "silent"})
    run = state.runs["s-0000"]
    assert run.state is RunState.LOST and run.reason == "silent"
    assert not state.apply({"e": "lost", "t": 12, "run": "s-0000", "attempt": 1})


def test_cancel() -> None:
    state = _fold({"e": "cancel", "t": 1, "reason": "enough"})
    assert state.cancelled and state.cancel_reason == "enough"
    assert not state.apply({"e": "cancel", "t": 2})


def test_agent_events() -> None:
    state = _fold(
        {"e": "agent", "t": 1, "agent": "a1", "event": "start", "node": "n1", "pid": 5, "slots": 4},
        {"e": "agent", "t": 9, "agent": "a1", "event": "stop"},
    )
    info = state.agents["a1"]
    assert (info.state, info.node, info.pid, info.slots) == ("stopped", "n1", 5, 4)
    assert (info.started_at, info.stopped_at) == (1, 9)
    assert not state.apply({"e": "agent", "t": 9, "agent": "a1", "event": "dance"})


def test_job_events_merge() -> None:
    state = _fold(
        {"e": "job", "t": 1, "job": "77", "nodes": 4, "array": None},
        {"e": "job", "t": 2, "job": "77", "state": "cancelled"},
    )
    assert state.jobs["77"] == {
        "first_t": 1,
        "t": 2,
        "nodes": 4,
        "array": None,
        "state": "cancelled",
    }


def test_malformed_and_unknown_events_are_not_fatal() -> None:
    state = _fold({"e": "claim", "t": 1}, {"e": "claim", "t": "x", "run": 1, "attempt": "?"})
    assert state.n_skipped == 2 and state.runs == {}
    assert not state.apply({"e": "from_the_future", "t": 1})
    assert state.n_skipped == 2
    state.apply(_claim())
    assert not state.apply(_end("finished", range=[1.0]))
    assert not state.apply(_end("finished", range="ab"))
    assert state.n_skipped == 4 and state.runs["s-0000"].state is RunState.RUNNING


def test_result_applies() -> None:
    running = Run("r", {}, RunState.RUNNING, attempt=2)
    assert result_applies(running, 2, RunState.FAILED)
    assert result_applies(running, 1, RunState.FINISHED)
    assert not result_applies(running, 1, RunState.FAILED)
    assert not result_applies(running, 3, RunState.FINISHED)
    assert not result_applies(Run("r", {}, RunState.FINISHED), 1, RunState.FINISHED)
