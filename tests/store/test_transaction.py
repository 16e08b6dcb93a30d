"""Transactions: buffered operations, their rules, one append on success, nothing on failure."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from sweepherd.config import SweepConfig
from sweepherd.errors import LockTimeoutError, StoreError
from sweepherd.runs import MAX_TIMEOUTS, RunState
from sweepherd.store import RunResult, SweepStore, create_sweep, open_sweep


def _claim(store: SweepStore, params: dict[str, object], agent: str = "a1") -> str:
    with store.transaction(agent=agent) as txn:
        return txn.claim_new(params, agent).id


def test_claim_new_numbers_runs_after_the_sweep(store: SweepStore) -> None:
    with store.transaction(agent="a1") as txn:
        first = txn.claim_new({"x": 1}, "a1", node="n1", gpus="0", job="42")
        second = txn.claim_new({"x": 2}, "a1")
    assert (first.id, second.id) == (f"{store.sweep_id}-0000", f"{store.sweep_id}-0001")
    assert (first.state, first.attempt, first.seq, first.node, first.gpus, first.job) == (
        RunState.RUNNING,
        1,
        0,
        "n1",
        "0",
        "42",
    )
    snap = store.snapshot()
    assert list(snap.runs) == [first.id, second.id]
    assert snap.runs[first.id] == first  # what a reader folds equals what the writer saw
    assert snap.next_seq == 2


def test_the_transaction_snapshot_shows_buffered_operations(store: SweepStore) -> None:
    with store.transaction() as txn:
        assert txn.snapshot.runs == {}
        run = txn.claim_new({"x": 1}, "a1")
        assert txn.snapshot.runs[run.id].state is RunState.RUNNING
        assert txn.snapshot.next_seq == 1
        assert store.snapshot().runs == {}  # not written yet
        txn.cancel("stop")
        assert txn.snapshot.cancelled
    assert store.snapshot().cancelled


def test_all_events_of_a_transaction_are_one_append(store: SweepStore) -> None:
    before = store.journal_path.read_bytes()
    with store.transaction() as txn:
        for i in range(3):
            txn.claim_new({"x": i}, "a1")
        lines = txn.encoded()
    assert store.journal_path.read_bytes() == before + lines


def test_an_exception_writes_nothing_and_releases_the_lock(store: SweepStore) -> None:
    before = store.journal_path.read_bytes()
    with pytest.raises(RuntimeError), store.transaction() as txn:
        txn.claim_new({"x": 1}, "a1")
        raise RuntimeError("boom")
    assert store.journal_path.read_bytes() == before
    assert not store.lock_path.exists()
    assert store.snapshot().runs == {}


def test_an_empty_transaction_writes_nothing(store: SweepStore) -> None:
    before = store.journal_path.stat()
    with store.transaction():
        pass
    assert store.journal_path.stat().st_size == before.st_size


def test_finish_rules_and_duplicates(store: SweepStore) -> None:
    run_id = _claim(store, {"x": 1})
    with store.transaction() as txn:
        assert txn.finish(run_id, 1, "finished", exit_code=0, metric=0.5, summary={"loss": 0.5})
        assert not txn.finish(run_id, 1, RunState.FAILED, exit_code=1)  # first terminal wins
        assert not txn.finish("nope", 1, "finished")
    run = store.snapshot().runs[run_id]
    assert (run.state, run.metric, run.summary) == (RunState.FINISHED, 0.5, {"loss": 0.5})
    with store.transaction() as txn:
        assert not txn.finish(run_id, 1, "finished")
        assert txn.n_pending == 0


def test_finish_refuses_running(store: SweepStore) -> None:
    run_id = _claim(store, {"x": 1})
    with pytest.raises(StoreError, match="state the run ended in"), store.transaction() as txn:
        txn.finish(run_id, 1, "running")


def test_record_takes_a_run_result(store: SweepStore) -> None:
    run_id = _claim(store, {"x": 1})
    with store.transaction() as txn:
        result = RunResult(
            run_id, 1, RunState.FAILED, exit_code=2, reason="exit 2", metric_range=(0.1, 0.7)
        )
        assert txn.record(result)
    run = store.snapshot().runs[run_id]
    assert (run.state, run.exit_code, run.reason) == (RunState.FAILED, 2, "exit 2")
    assert run.metric_range == (0.1, 0.7)  # written to the journal, folded back
    assert open_sweep(store.path, store.path.parent).snapshot().runs[run_id].metric_range == (
        0.1,
        0.7,
    )


def test_lost_then_claimed_again_then_the_old_agent_finishes(store: SweepStore) -> None:
    run_id = _claim(store, {"x": 1}, agent="a1")
    with store.transaction() as txn:
        assert txn.mark_lost(run_id, "silent")
        assert not txn.mark_lost(run_id, "again")
        again = txn.claim_again(run_id, "a2", node="n2")
    assert (again.attempt, again.agent, again.params) == (2, "a2", {"x": 1})
    with store.transaction() as txn:
        assert txn.finish(run_id, 1, "finished", metric=1.0)  # the first agent was alive after all
        assert not txn.finish(run_id, 2, "finished", metric=2.0)
    assert store.snapshot().runs[run_id].metric == 1.0


def test_claim_again_only_for_preempted_or_lost(store: SweepStore) -> None:
    run_id = _claim(store, {"x": 1})
    with pytest.raises(StoreError, match="only preempted or lost"), store.transaction() as txn:
        txn.claim_again(run_id, "a2")
    with pytest.raises(StoreError, match="no run"), store.transaction() as txn:
        txn.claim_again("missing", "a2")
    with store.transaction() as txn:
        txn.finish(run_id, 1, "preempted")
        assert txn.claim_again(run_id, "a2").attempt == 2


def test_cancel_once(store: SweepStore) -> None:
    with store.transaction() as txn:
        assert txn.cancel("enough")
        assert not txn.cancel()
    snap = store.snapshot()
    assert snap.cancelled and snap.cancel_reason == "enough"


def test_record_agent_and_job(store: SweepStore) -> None:
    with store.transaction() as txn:
        txn.record_agent("a1", "start", node="n1", host="h", pid=12, job="7", slots=2)
        txn.record_job("7", nodes=2, partition="gpu")
    with store.transaction() as txn:
        txn.record_agent("a1", "stop")
        with pytest.raises(StoreError, match="'start' or 'stop'"):
            txn.record_agent("a1", "pause")
    snap = store.snapshot()
    agent = snap.agents["a1"]
    assert (agent.state, agent.node, agent.pid, agent.job, agent.slots) == (
        "stopped",
        "n1",
        12,
        "7",
        2,
    )
    assert snap.jobs["7"]["nodes"] == 2 and snap.jobs["7"]["partition"] == "gpu"


def test_values_that_are_not_json_are_refused_before_anything_is_buffered(
    store: SweepStore,
) -> None:
    with store.transaction() as txn:
        with pytest.raises(StoreError, match="plain JSON"):
            txn.claim_new({"x": object()}, "a1")
        assert txn.n_pending == 0


def test_params_come_back_as_json_gives_them(store: SweepStore) -> None:
    with store.transaction() as txn:
        run = txn.claim_new({"x": (1, 2), "nested": {"y": None}}, "a1")
    assert run.params == {"x": [1, 2], "nested": {"y": None}}
    assert store.snapshot().runs[run.id].params == run.params


def test_lock_timeout(store: SweepStore) -> None:
    with store.transaction(agent="holder"):
        other = SweepStore(store.path, store.meta)
        with pytest.raises(LockTimeoutError, match="agent holder"), other.transaction(0.1):
            pass


def test_a_taken_over_lock_writes_nothing(store: SweepStore) -> None:
    before = store.journal_path.read_bytes()
    with pytest.raises(LockTimeoutError, match="taken over"), store.transaction() as txn:
        txn.claim_new({"x": 1}, "a1")
        store.lock_path.unlink()  # as if broken by another process: we were judged stale
    assert store.journal_path.read_bytes() == before


def test_snapshot_is_incremental(store: SweepStore) -> None:
    other = SweepStore(store.path, store.meta)  # another process's handle
    _claim(other, {"x": 1})
    first = store.snapshot()
    offset = store._reader.offset
    assert len(first.runs) == 1
    assert store.snapshot().runs == first.runs
    assert store._reader.offset == offset  # nothing new was read
    _claim(other, {"x": 2})
    assert len(store.snapshot().runs) == 2
    assert store._reader.offset > offset


def test_torn_last_line_sweep_opens_and_continues(store: SweepStore) -> None:
    _claim(store, {"x": 1})
    with store.journal_path.open("ab") as f:  # a crash in the middle of an append
        f.write(b'{"e":"claim","t":1,"run":"')
    fresh = SweepStore(store.path, store.meta)
    assert len(fresh.snapshot().runs) == 1
    run_id = _claim(fresh, {"x": 2})
    lines = store.journal_path.read_bytes().splitlines()
    assert lines[-2] == b'{"e":"claim","t":1,"run":"'
    assert b'"params":{"x":2}' in lines[-1]
    snap = SweepStore(store.path, store.meta).snapshot()
    assert list(snap.runs)[-1] == run_id and snap.n_skipped == 1


def test_garbage_in_the_middle_is_skipped(store: SweepStore) -> None:
    _claim(store, {"x": 1})
    with store.journal_path.open("ab") as f:
        f.write(b"garbage\n{broken\n")
    _claim(store, {"x": 2})
    snap = SweepStore(store.path, store.meta).snapshot()
    assert [r.params for r in snap.runs.values()] == [{"x": 1}, {"x": 2}]
    assert snap.n_skipped == 2


def test_full_disk_raises_and_the_retry_records_once(
    tmp_path: Path,
    config: SweepConfig,
    mount_tmpfs: Callable[[int], Path],
    fill_disk: Callable[[Path], list[Path]],
) -> None:
    disk = mount_tmpfs(128)
    store = create_sweep(disk, config)
    run_id = _claim(store, {"x": 0})
    before = store.journal_path.read_bytes()
    fillers = fill_disk(disk)
    big = {"loss": 0.5, "history": list(range(2000))}  # the result needs new pages
    # Completely full: even the lock file cannot be written.
    with pytest.raises(StoreError, match="full"), store.transaction() as txn:
        txn.finish(run_id, 1, "finished", summary=big)
    # One page free: the lock fits, the journal append does not.
    fillers.pop().unlink()
    with pytest.raises(StoreError, match=r"disk .* is full.*retry"), store.transaction() as txn:
        txn.finish(run_id, 1, "finished", summary=big)
    assert store.journal_path.read_bytes() == before
    assert not store.lock_path.exists()
    assert store.snapshot().runs[run_id].state is RunState.RUNNING
    for path in fillers:
        path.unlink()
    with store.transaction() as txn:
        assert txn.finish(run_id, 1, "finished", summary=big)
        txn.claim_new({"x": 1}, "a1")
    snap = SweepStore(store.path, store.meta).snapshot()
    assert snap.runs[run_id].state is RunState.FINISHED
    assert [r.seq for r in snap.runs.values()] == [0, 1]
    assert snap.n_skipped == 0 and snap.n_events == 4  # created, claim, end, claim


def test_read_only_sweep_can_be_read_but_not_written(
    config: SweepConfig, mount_tmpfs: Callable[[int], Path]
) -> None:
    disk = mount_tmpfs(128)
    store = create_sweep(disk, config)
    run_id = _claim(store, {"x": 0})
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    fresh = SweepStore(store.path, store.meta)
    assert list(fresh.snapshot().runs) == [run_id]
    with pytest.raises(StoreError, match="read-only"), fresh.transaction() as txn:
        txn.finish(run_id, 1, "finished")
    with pytest.raises(StoreError, match="read-only"):
        fresh.heartbeat("a1")


def test_a_result_keeps_the_metrics_last_finite_value(store: SweepStore) -> None:
    """W&B's ``impute: latest`` for a run that logged NaN last: the value before it."""
    run_id = _claim(store, {"x": 1})
    result = RunResult(
        run_id, 1, RunState.FAILED, 1, None, {"loss": "NaN"}, "diverged",
        metric_range=(0.4, 0.9), metric_last=0.4,
    )  # fmt: skip
    assert RunResult.from_json(result.to_json()) == result  # how a request carries it
    with store.transaction(agent="a1") as txn:
        assert txn.record(result)
    run = open_sweep(store.path, store.path.parent).snapshot().runs[run_id]  # from the journal
    assert (run.metric, run.metric_range, run.metric_last) == (None, (0.4, 0.9), 0.4)


def test_time_limit_stops_are_counted_until_the_run_is_given_up(store: SweepStore) -> None:
    """A run preempted by the time limit while keeping no checkpoint (``timeout``) is resumed
    until MAX_TIMEOUTS such stops; other preemptions do not count."""
    run_id = _claim(store, {"x": 1})
    stops = [False, True, True, True]  # a preemption, then three time limits
    for attempt, timeout in enumerate(stops, 1):
        if attempt > 1:
            with store.transaction(agent="a1") as txn:
                txn.claim_again(run_id, "a1")
        result = RunResult(run_id, attempt, RunState.PREEMPTED, timeout=timeout)
        assert RunResult.from_json(result.to_json()) == result  # how a request carries it
        with store.transaction(agent="a1") as txn:
            assert txn.record(result)
        run = store.snapshot().runs[run_id]
        assert run.timeouts == sum(stops[:attempt])
        assert run.will_run_again is (run.timeouts < MAX_TIMEOUTS)
    assert run.gave_up and run.state is RunState.PREEMPTED
    # a finished result is never a timeout, whatever it says
    other = _claim(store, {"x": 2})
    with store.transaction(agent="a1") as txn:
        txn.record(RunResult(other, 1, RunState.FINISHED, timeout=True))
    assert store.snapshot().runs[other].timeouts == 0
