"""claim_next: what an agent gets next, decided in one transaction; and real processes racing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sweepherd.agent import _claim as claim_module
from sweepherd.agent._claim import claim_next
from sweepherd.config import parse_config
from sweepherd.live_metric import LIVE_FILE, live_document
from sweepherd.runs import MAX_LOSSES, Run, RunState
from sweepherd.search import suggest
from sweepherd.store import RunResult, SweepStore, create_sweep

WORKER = str(Path(__file__).with_name("claim_worker.py"))


def _sweep(tmp_path: Path, n: int = 5, **extra: Any) -> SweepStore:
    raw = {
        "program": "train.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": list(range(n))}},
        **extra,
    }
    return create_sweep(tmp_path / "sweeps", parse_config(raw))


def _finish(store: SweepStore, run_id: str, attempt: int = 1, metric: float = 0.0) -> None:
    with store.transaction() as txn:
        assert txn.finish(run_id, attempt, "finished", exit_code=0, metric=metric)


def _write_beat(store: SweepStore, agent: str, age_s: float, state: str = "running") -> None:
    path = store.agents_dir / f"{agent}.json"
    path.write_text(json.dumps({"agent": agent, "t": time.time() - age_s, "state": state}))


def test_grid_points_are_claimed_in_order_then_exhausted(tmp_path: Path) -> None:
    store = _sweep(tmp_path, n=3)
    got = []
    for _ in range(3):
        claim = claim_next(store, agent_id="a1", node="n1", gpus="0", job="9")
        assert claim.run is not None and claim.reason is None
        got.append(claim.run.params["x"])
        assert (claim.run.node, claim.run.gpus, claim.run.job) == ("n1", "0", "9")
    assert got == [0, 1, 2]
    claim = claim_next(store, agent_id="a2")
    assert claim.run is None and "grid" in (claim.reason or "")
    assert claim.n_running == 3  # a1 still holds them


def test_results_are_recorded_in_the_same_transaction(tmp_path: Path) -> None:
    store = _sweep(tmp_path, n=2)
    first = claim_next(store, agent_id="a1").run
    assert first is not None
    size = store.journal_path.stat().st_size
    result = RunResult(first.id, 1, RunState.FINISHED, exit_code=0, metric=0.5)
    claim = claim_next(store, agent_id="a1", results=[result, result])
    assert claim.recorded == (True, False)  # the duplicate is dropped
    assert claim.run is not None and claim.run.params == {"x": 1}
    snap = store.snapshot()
    assert snap.runs[first.id].state is RunState.FINISHED and snap.runs[first.id].metric == 0.5
    assert store.journal_path.read_bytes()[size:].count(b"\n") == 2  # one append: end + claim


def test_cancelled_sweep_gives_no_run_but_records_results(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    run = claim_next(store, agent_id="a1").run
    assert run is not None
    with store.transaction() as txn:
        txn.cancel("enough")
    claim = claim_next(
        store, agent_id="a1", results=[RunResult(run.id, 1, RunState.KILLED, reason="cancel")]
    )
    assert claim.run is None and claim.reason == "the sweep was cancelled: enough"
    assert claim.recorded == (True,)
    assert store.snapshot().runs[run.id].state is RunState.KILLED


def test_run_cap_ends_the_sweep(tmp_path: Path) -> None:
    store = _sweep(tmp_path, n=10, run_cap=2)
    assert claim_next(store, agent_id="a1").run is not None
    assert claim_next(store, agent_id="a1").run is not None
    claim = claim_next(store, agent_id="a1")
    assert claim.run is None and "run_cap" in (claim.reason or "")


def test_metric_target_ends_the_sweep(tmp_path: Path) -> None:
    raw_metric = {"name": "loss", "goal": "minimize", "target": 0.1}
    store = _sweep(tmp_path, n=10, metric=raw_metric)
    run = claim_next(store, agent_id="a1").run
    assert run is not None
    _finish(store, run.id, metric=0.05)
    claim = claim_next(store, agent_id="a1")
    assert claim.run is None and "target" in (claim.reason or "")


def _lost(store: SweepStore) -> set[str]:
    """Runs that were declared lost, read from the journal."""
    lines = store.journal_path.read_text().splitlines()
    return {e["run"] for e in map(json.loads, lines) if e["e"] == "lost"}


def test_silent_agents_runs_are_lost_and_run_again_same_params(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    _write_beat(store, "dead", age_s=0)
    run = claim_next(store, agent_id="dead").run
    assert run is not None
    time.sleep(0.3)  # no heartbeat since
    claim = claim_next(store, agent_id="a2", lost_grace_s=0.2)
    assert _lost(store) == {run.id}
    assert claim.run is not None
    assert (claim.run.id, claim.run.attempt, claim.run.params) == (run.id, 2, run.params)
    assert claim.run.agent == "a2"
    lost_line = json.loads(store.journal_path.read_text().splitlines()[-2])
    assert lost_line["e"] == "lost" and "silent" in lost_line["reason"]


def test_a_live_agents_runs_are_left_alone(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    run = claim_next(store, agent_id="alive").run
    assert run is not None
    time.sleep(0.3)
    store.heartbeat("alive")  # its run is older than the grace, but it beats
    claim = claim_next(store, agent_id="a2", lost_grace_s=0.2)
    assert _lost(store) == set() and claim.run is not None and claim.run.id != run.id


def test_a_just_claimed_run_without_heartbeat_is_not_lost_before_the_grace(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    run = claim_next(store, agent_id="new").run  # "new" has written no heartbeat yet
    assert run is not None
    claim_next(store, agent_id="a2", lost_grace_s=30)
    assert _lost(store) == set()
    time.sleep(0.3)
    claim_next(store, agent_id="a3", lost_grace_s=0.2)
    assert run.id in _lost(store)


def test_an_agent_that_stopped_loses_its_runs_at_once(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    run = claim_next(store, agent_id="stopper").run
    assert run is not None
    with store.transaction() as txn:
        txn.record_agent("stopper", "stop")
    claim_next(store, agent_id="a3", lost_grace_s=3600)
    assert _lost(store) == {run.id}


def test_an_exited_heartbeat_loses_an_old_run_without_waiting_for_silence(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    run = claim_next(store, agent_id="exiter").run
    assert run is not None
    time.sleep(0.3)
    _write_beat(store, "exiter", age_s=0, state="exited")  # fresh, but says it is gone
    claim_next(store, agent_id="a3", lost_grace_s=0.2)
    assert _lost(store) == {run.id}


def test_an_old_stop_does_not_lose_a_run_claimed_after_it(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    with store.transaction() as txn:  # a previous life of the same agent id
        txn.record_agent("again", "stop")
    run = claim_next(store, agent_id="again").run
    assert run is not None
    claim_next(store, agent_id="other", lost_grace_s=3600)
    assert _lost(store) == set()


def test_runs_of_agents_asking_are_never_declared_lost(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    run = claim_next(store, agent_id="me").run
    assert run is not None
    _write_beat(store, "me", age_s=1000)
    time.sleep(0.3)
    claim_next(store, agent_id="me", lost_grace_s=0.2)
    assert _lost(store) == set()


def test_preempted_runs_come_back_before_lost_ones(tmp_path: Path) -> None:
    store = _sweep(tmp_path)
    lost = claim_next(store, agent_id="a1").run
    preempted = claim_next(store, agent_id="a1").run
    assert lost is not None and preempted is not None
    with store.transaction() as txn:
        txn.mark_lost(lost.id, "silent")
        txn.finish(preempted.id, 1, "preempted")
    again = [claim_next(store, agent_id="a2").run for _ in range(3)]
    assert [(r.id, r.attempt) for r in again if r] == [
        (preempted.id, 2),
        (lost.id, 2),
        (f"{store.sweep_id}-0002", 1),
    ]


def test_a_run_lost_max_losses_times_is_not_run_again_but_a_late_result_counts(
    tmp_path: Path,
) -> None:
    store = _sweep(tmp_path, n=2)
    poison = claim_next(store, agent_id="a1").run
    assert poison is not None
    for attempt in range(1, MAX_LOSSES + 1):
        with store.transaction() as txn:  # its agent died with its node, every time
            txn.mark_lost(poison.id, f"silent (attempt {attempt})")
        claim = claim_next(store, agent_id=f"a{attempt + 1}")
        assert claim.run is not None
        if attempt < MAX_LOSSES:
            assert (claim.run.id, claim.run.attempt) == (poison.id, attempt + 1)
    assert claim.run.id != poison.id and claim.run.attempt == 1  # the grid's other point
    given_up = store.snapshot().runs[poison.id]
    assert (given_up.state, given_up.losses, given_up.gave_up) == (RunState.LOST, MAX_LOSSES, True)
    _finish(store, claim.run.id)
    assert claim_next(store, agent_id="a9").run is None  # nothing is run again
    # Its last agent was only cut off and reports it finished: that still counts.
    _finish(store, poison.id, attempt=MAX_LOSSES, metric=0.5)
    assert store.snapshot().runs[poison.id].state is RunState.FINISHED


def test_random_search_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    raw = {"method": "random", "parameters": {"lr": {"min": 0.0, "max": 1.0}}, "program": "t.py"}
    params = []
    for name in ("one", "two"):
        store = create_sweep(tmp_path / name, parse_config(raw))
        runs = [claim_next(store, agent_id="a", seed=7).run for _ in range(3)]
        params.append([r.params for r in runs if r])
    assert params[0] == params[1]
    assert len({p["lr"] for p in params[0]}) == 3


@pytest.mark.parametrize("impute_while_running", [None, "latest"])
def test_bayes_sees_running_runs_metric_so_far_when_it_imputes_while_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, impute_while_running: str | None
) -> None:
    """W&B's bayes learns from a running run's best value so far with impute_while_running;
    that value is in the live file of the run's agent, not in the journal."""
    metric = {"name": "loss", "goal": "minimize", "impute_while_running": impute_while_running}
    raw = {
        "method": "bayes",
        "metric": {k: v for k, v in metric.items() if v is not None},
        "parameters": {"lr": {"min": 0.0, "max": 1.0}},
        "program": "t.py",
    }
    store = create_sweep(tmp_path / "sweeps", parse_config(raw))
    running = [claim_next(store, agent_id="busy").run for _ in range(2)]
    assert running[0] is not None and running[1] is not None
    live = store.run_dir(running[0].id) / LIVE_FILE
    live.parent.mkdir(parents=True, exist_ok=True)
    live.write_bytes(live_document(running[0].id, 1, "loss", [0.9, 0.3, 0.5], 0.5))
    seen: list[list[Run]] = []

    def spy(config: Any, runs: list[Run], *args: Any) -> Any:  # calls the real search
        seen.append(list(runs))
        return suggest(config, runs, *args)

    monkeypatch.setattr(claim_module, "suggest", spy)
    assert claim_next(store, agent_id="a").run is not None
    ranges = {r.id: r.metric_range for r in seen[-1]}
    expected = (0.3, 0.9) if impute_while_running else None
    assert ranges == {running[0].id: expected, running[1].id: None}
    assert store.snapshot().runs[running[0].id].metric_range is None  # nothing written


# -- real processes ------------------------------------------------------------------------------


def _start(
    store: SweepStore, agent: str, mode: str, grace_s: float = 60.0
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, str(store.path), agent, mode, str(grace_s)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _collect(procs: list[subprocess.Popen[str]], timeout_s: float = 120) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout_s)
        assert proc.returncode == 0, err
        lines.extend(json.loads(line) for line in out.splitlines())
    return lines


def _check_complete(store: SweepStore, n: int) -> None:
    """Every point of the grid ran exactly once and finished; every result was written once."""
    snap = SweepStore(store.path, store.meta).snapshot()
    assert snap.n_skipped == 0
    assert len(snap.runs) == n
    assert sorted(r.params["x"] for r in snap.runs.values()) == list(range(n))
    assert all(r.state is RunState.FINISHED for r in snap.runs.values())
    events = [json.loads(line) for line in store.journal_path.read_text().splitlines()]
    ends = Counter(e["run"] for e in events if e["e"] == "end")
    assert set(ends) == set(snap.runs) and set(ends.values()) == {1}
    first_claims = Counter(e["run"] for e in events if e["e"] == "claim" and e["attempt"] == 1)
    assert set(first_claims.values()) == {1}


@pytest.mark.slow
def test_16_processes_claim_a_200_point_grid_each_point_once(tmp_path: Path) -> None:
    store = _sweep(tmp_path, n=200)
    procs = [_start(store, f"w{i}", "loop") for i in range(16)]
    lines = _collect(procs)
    claims = [line for line in lines if "run" in line]
    assert not [line for line in lines if "error" in line]
    assert len(claims) == 200
    assert sorted(c["params"]["x"] for c in claims) == list(range(200))
    assert {c["attempt"] for c in claims} == {1}
    assert len([line for line in lines if "done" in line]) == 16
    _check_complete(store, 200)


@pytest.mark.slow
def test_a_process_killed_while_holding_the_lock_does_not_block_the_sweep(tmp_path: Path) -> None:
    store = _sweep(tmp_path, n=40)
    holder = _start(store, "holder", "hold-lock")
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    assert store.lock_path.exists()
    holder.send_signal(signal.SIGKILL)  # not reaped yet: a zombie, as under a slow parent
    start = time.monotonic()
    lines = _collect([_start(store, f"w{i}", "loop") for i in range(4)])
    elapsed = time.monotonic() - start
    holder.communicate()  # reap it and close its pipes
    assert len([line for line in lines if "run" in line]) == 40
    _check_complete(store, 40)
    assert elapsed < store.lock_stale_s  # broken because its pid died, not by waiting it out
    assert not store.lock_path.exists()


@pytest.mark.slow
def test_a_process_killed_while_running_a_run_loses_it_and_it_runs_again(tmp_path: Path) -> None:
    store = _sweep(tmp_path, n=40)
    victim = _start(store, "victim", "claim-and-hang")
    assert victim.stdout is not None
    taken = json.loads(victim.stdout.readline())
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    lines = _collect([_start(store, f"w{i}", "loop", grace_s=1.0) for i in range(4)])
    claims = [line for line in lines if "run" in line]
    assert [c["attempt"] for c in claims if c["run"] == taken["run"]] == [2]
    assert len(claims) == 40  # 39 new points + the lost one again
    _check_complete(store, 40)
    run = SweepStore(store.path, store.meta).snapshot().runs[taken["run"]]
    assert run.attempt == 2 and run.agent != "victim"


@pytest.mark.slow
def test_requests_taken_by_a_holder_that_is_killed_are_served_again(tmp_path: Path) -> None:
    store = _sweep(tmp_path, n=40)
    holder = _start(store, "holder", "take-and-die")
    assert holder.stdin is not None and holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    workers = [_start(store, f"w{i}", "loop") for i in range(4)]
    requests = store.path / "requests"
    deadline = time.monotonic() + 60
    while len(list(requests.iterdir())) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    holder.stdin.write("take\n")
    holder.stdin.flush()
    assert int(holder.stdout.readline()) == 4  # every waiting request is taken...
    holder.send_signal(signal.SIGKILL)  # ...and never answered
    holder.communicate()
    lines = _collect(workers)
    assert len([line for line in lines if "run" in line]) == 40
    _check_complete(store, 40)


def _bayes_sweep_with_history(tmp_path: Path, n_finished: int) -> SweepStore:
    raw = {
        "program": "train.py",
        "method": "bayes",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": -2.0, "max": 2.0}, "y": {"min": -2.0, "max": 2.0}},
    }
    store = create_sweep(tmp_path / "sweeps", parse_config(raw))
    for i in range(n_finished):
        with store.transaction() as txn:
            run = txn.claim_new({"x": i / n_finished * 4 - 2, "y": 0.5}, "seed")
            txn.finish(run.id, 1, "finished", exit_code=0, metric=float(i % 5))
    return store


def test_a_slow_search_serves_what_fits_in_its_budget_and_asks_the_rest_to_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Suggestions are made under the lock; a slow model (here Optuna's real GP, or TPE
    without torch) must not hold it for the whole burst, or other agents break the lock."""
    from sweepherd.agent import _claim
    from sweepherd.store import ClaimRequest

    store = _bayes_sweep_with_history(tmp_path, 12)
    monkeypatch.setattr(_claim, "SUGGEST_BUDGET_S", 0.0)  # no time for more than one point
    requests = [ClaimRequest(token=f"t{i}", agent=f"a{i}", t=float(i)) for i in range(6)]
    with store.transaction() as txn:
        _claim.serve_claims(txn, requests, store, store.config, store.seed, 60.0)
        encoded = txn.encoded().decode()
    events = [json.loads(line) for line in encoded.splitlines()]
    claims = [e for e in events if e["e"] == "claim"]
    replies = [e for e in events if e["e"] == "reply"]
    assert [c["req"] for c in claims] == ["t0"]  # the oldest request got a point
    assert {r["req"] for r in replies} == {"t1", "t2", "t3", "t4", "t5"}
    assert {r["reason"] for r in replies} == {_claim.BUSY}

    # Asked again, each gets its own point and no two get the same one.
    monkeypatch.setattr(_claim, "SUGGEST_BUDGET_S", 60.0)
    points = set()
    for i in range(1, 6):
        claim = claim_next(store, agent_id=f"a{i}")
        assert claim.run is not None and not claim.retry
        points.add((claim.run.params["x"], claim.run.params["y"]))
    assert len(points) == 5
