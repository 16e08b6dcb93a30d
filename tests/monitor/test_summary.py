"""Sweep states, throughput and ETA from real sweeps' runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.helpers import Sweep, make_sweep
from sweepherd.monitor import (
    eta_s,
    failures_text,
    overview,
    progress,
    progress_text,
    run_as_dict,
    state_label,
    sweep_state,
    throughput_per_min,
)
from sweepherd.runs import MAX_LOSSES, Run, RunState


def _state(sweep: Sweep) -> str:
    snap = sweep.store.snapshot()
    return sweep_state(sweep.store.config, list(snap.runs.values()), snap.cancelled)


def test_grid_sweep_states(sweep: Sweep) -> None:
    assert _state(sweep) == "empty"
    runs = [sweep.claim({"x": x, "opt": {"lr": lr}}) for x in (1, 2, 3) for lr in (0.1, 0.01)]
    assert _state(sweep) == "running"
    for run in runs[:-1]:
        sweep.finish(run, metric=1.0)
    assert _state(sweep) == "running"
    with sweep.store.transaction() as txn:
        txn.finish(runs[-1].id, 1, "preempted")
    assert _state(sweep) == "paused"  # a run waits to be resumed, nothing runs
    sweep.claim_again(runs[-1].id)
    sweep.finish(runs[-1], "failed", exit_code=1)
    assert _state(sweep) == "done"  # every grid point ran (a failed one is not retried)


def test_a_run_lost_too_often_is_reported_failed_and_the_grid_can_be_done(sweep: Sweep) -> None:
    runs = [sweep.claim({"x": x, "opt": {"lr": lr}}) for x in (1, 2, 3) for lr in (0.1, 0.01)]
    for run in runs[:-1]:
        sweep.finish(run, metric=1.0)
    poison = runs[-1]
    for attempt in range(1, MAX_LOSSES + 1):
        with sweep.store.transaction() as txn:
            txn.mark_lost(poison.id, "its agent a was silent for 90 s")
        snap = sweep.store.snapshot()
        if attempt < MAX_LOSSES:
            assert _state(sweep) == "paused"  # waits to be run again
            assert progress(sweep.store.config, list(snap.runs.values())).n_waiting == 1
            sweep.claim_again(poison.id)
    runs_now = list(sweep.store.snapshot().runs.values())
    prog = progress(sweep.store.config, runs_now)
    assert (prog.n_waiting, prog.n_given_up, prog.n_done) == (0, 1, 5)
    assert _state(sweep) == "done"
    assert eta_s(prog, 1.0) == 0.0
    as_dict = run_as_dict(sweep.run(poison.id))
    assert (as_dict["losses"], as_dict["will_run_again"]) == (MAX_LOSSES, False)
    assert (as_dict["attempt"], as_dict["result_attempt"]) == (MAX_LOSSES, None)  # no result
    text = failures_text(runs_now).plain
    assert f"{poison.id} failed: lost {MAX_LOSSES} times, so not run again" in text
    assert "silent for 90 s" in text
    # Shown as what it is in every view: given up, and ended for good ("6/6", not "5/6").
    assert prog.shown == (("finished", 5), ("given up", 1))
    assert progress_text(sweep.store.config, prog, runs_now).plain.startswith(
        "6/6 runs  5 finished  1 given up"
    )
    assert state_label(sweep.run(poison.id)) == "given up"
    row = overview(sweep.store)
    assert (row.state, row.n_done) == ("done", 6)


def test_a_half_run_grid_with_no_agent_is_paused(sweep: Sweep) -> None:
    sweep.finish(sweep.claim({"x": 1, "opt": {"lr": 0.1}}), metric=1.0)
    assert _state(sweep) == "paused"


def test_run_cap_and_target_end_a_random_sweep(root: Path) -> None:
    raw = {
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize", "target": 0.1},
        "run_cap": 3,
        "parameters": {"lr": {"min": 0.0, "max": 1.0}},
    }
    capped = make_sweep(root, raw, sweep_id="capped")
    for value in (0.5, 0.4, 0.3):
        capped.finish(capped.claim({"lr": value}), metric=value)
    assert _state(capped) == "done"
    target = make_sweep(root, raw, sweep_id="target")
    target.finish(target.claim({"lr": 0.5}), metric=0.05)
    assert _state(target) == "done"
    endless_raw = {k: v for k, v in raw.items() if k != "run_cap"}
    endless_raw["metric"] = {"name": "loss"}
    endless = make_sweep(root, endless_raw, "endless")
    endless.finish(endless.claim({"lr": 0.5}), metric=0.05)
    assert _state(endless) == "paused"


def test_cancelled_wins(sweep: Sweep) -> None:
    sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    sweep.cancel()
    assert _state(sweep) == "cancelled"


def _run(i: int, created: float, ended: float | None) -> Run:
    state = RunState.FINISHED if ended is not None else RunState.RUNNING
    return Run(f"r{i}", {}, state, created_at=created, started_at=created, ended_at=ended)


def test_throughput_counts_runs_ended_in_the_window() -> None:
    runs = [_run(i, 0.0, 60.0 * (i + 1)) for i in range(4)] + [_run(9, 200.0, None)]
    # 4 runs ended in the 300 s since the sweep started: 0.8 runs/min.
    assert throughput_per_min(runs, now=300.0) == pytest.approx(0.8)
    # Over the last 150 s only the runs that ended at 180 and 240 count.
    assert throughput_per_min(runs, now=300.0, window_s=150.0) == pytest.approx(0.8)
    assert throughput_per_min(runs, now=10_000.0, window_s=60.0) is None
    assert throughput_per_min([_run(0, 0.0, None)], now=5.0) is None


def test_eta_from_the_remaining_runs(sweep: Sweep) -> None:
    runs = list(sweep.store.snapshot().runs.values())
    prog = progress(sweep.store.config, runs)  # 0 of 6 done
    assert eta_s(prog, 2.0) == pytest.approx(180.0)
    assert eta_s(prog, None) is None
    random = make_sweep(
        sweep.path.parent, {"method": "random", "parameters": {"a": {"value": 1}}}, "r"
    )
    assert eta_s(progress(random.store.config, []), 5.0) is None  # no total: no ETA
