"""Finding a run by id or number, cutting one attempt out of its logs, following a live run."""

from __future__ import annotations

import pytest

from monitor.helpers import Sweep
from sweepherd.errors import StoreError
from sweepherd.monitor import attempt_slice, follow_log, resolve_run
from sweepherd.monitor._logs import until_next_attempt

#: The agent writes this line before each attempt after the first (sweepherd.agent._trial).
BANNER = "--- sweepherd: attempt {n} on node{n} at 2026-01-01T00:00:0{n} ---\n"


def test_resolve_run_by_id_or_number(sweep: Sweep) -> None:
    runs = [sweep.claim({"x": x, "opt": {"lr": 0.1}}) for x in (1, 2, 3)]
    snap = sweep.store.snapshot()
    assert resolve_run(snap, sweep.id, runs[1].id) == runs[1]
    assert resolve_run(snap, sweep.id, "2").id == "sw1-0002"
    assert resolve_run(snap, sweep.id, "0001").id == "sw1-0001"
    with pytest.raises(StoreError) as err:
        resolve_run(snap, sweep.id, "7")
    assert str(err.value).startswith("Sweep sw1 has no run '7' (its runs are sw1-0000 … sw1-0002).")
    assert "\n" not in str(err.value)
    with pytest.raises(StoreError, match="has no run 'abc'"):
        resolve_run(snap, sweep.id, "abc")


def test_resolve_run_in_a_sweep_without_runs(sweep: Sweep) -> None:
    with pytest.raises(StoreError, match="it has no runs yet"):
        resolve_run(sweep.store.snapshot(), sweep.id, "0")


def test_attempt_slices() -> None:
    log = ("one\n" + BANNER.format(n=2) + "two\n" + BANNER.format(n=3) + "three\n").encode()
    assert attempt_slice(log, 1) == b"one\n"
    assert attempt_slice(log, 2) == (BANNER.format(n=2) + "two\n").encode()
    assert attempt_slice(log, 3) == (BANNER.format(n=3) + "three\n").encode()
    assert attempt_slice(log, 4) == b""
    assert until_next_attempt(b"tail of two\n" + BANNER.format(n=3).encode() + b"x", 2) == (
        b"tail of two\n"
    )


def _preempted_twice(sweep: Sweep) -> str:
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    sweep.write(run, "stdout.log", "first\n")
    for n in (2, 3):
        with sweep.store.transaction() as txn:
            txn.finish(run.id, n - 1, "preempted")
        sweep.claim_again(run.id)
        sweep.write(run, "stdout.log", BANNER.format(n=n) + f"attempt {n}\n")
    return run.id


def test_show_one_attempt_or_all(sweep: Sweep) -> None:
    run_id = _preempted_twice(sweep)
    run = sweep.run(run_id)
    out: list[bytes] = []
    follow_log(sweep.store, run, out.append)
    assert b"".join(out).count(b"--- sweepherd: attempt") == 2
    out.clear()
    follow_log(sweep.store, run, out.append, attempt=2)
    assert b"".join(out) == (BANNER.format(n=2) + "attempt 2\n").encode()
    with pytest.raises(StoreError, match=r"has no attempt 4: its attempts are 1 to 3\."):
        follow_log(sweep.store, run, out.append, attempt=4)


def test_a_missing_log_is_a_clear_error(sweep: Sweep) -> None:
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    sweep.finish(run, "failed", exit_code=1)
    with pytest.raises(StoreError, match=r"Run sw1-0000 has no stderr\.log in "):
        follow_log(sweep.store, sweep.run(run.id), lambda _: None, stderr=True)


def test_follow_writes_new_output_until_the_run_ends(sweep: Sweep) -> None:
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    sweep.write(run, "stdout.log", "epoch 0\n")
    out: list[bytes] = []
    steps = iter(
        [
            lambda: sweep.write(run, "stdout.log", "epoch 1\n"),
            lambda: None,
            lambda: sweep.write(run, "stdout.log", "epoch 2\ndone\n"),
            lambda: sweep.finish(run, metric=0.1),  # the run ends after its last output
        ]
    )

    def pause(_: float) -> None:
        next(steps)()

    last = follow_log(sweep.store, run, out.append, follow=True, sleep=pause)
    assert b"".join(out) == b"epoch 0\nepoch 1\nepoch 2\ndone\n"
    assert last.state.value == "finished"


def test_follow_waits_for_a_log_that_does_not_exist_yet(sweep: Sweep) -> None:
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    out: list[bytes] = []
    steps = iter(
        [
            lambda: sweep.write(run, "stdout.log", "late start\n"),
            lambda: sweep.finish(run, "failed", exit_code=1),
        ]
    )

    def pause(_: float) -> None:
        next(steps)()

    follow_log(sweep.store, run, out.append, follow=True, sleep=pause)
    assert b"".join(out) == b"late start\n"
