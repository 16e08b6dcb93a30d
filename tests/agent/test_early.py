"""Early termination in the agent: what it reads, and a real sweep whose poor runs are stopped."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.agents import SweepFactory
from sweepherd.agent._early import EarlyTermination
from sweepherd.agent._metrics import JsonlSource, RunMetrics
from sweepherd.agent._slots import Slot
from sweepherd.agent._trial import StopCause, Trial
from sweepherd.config import parse_config
from sweepherd.live_metric import LIVE_FILE
from sweepherd.runs import RunState
from sweepherd.store import RunResult, SweepStore, create_sweep, open_sweep

FAST = ("--heartbeat", "0.3", "--lost-after", "5", "--stop-grace", "5")

#: A run whose loss falls as 1/t towards its parameter q: lower q is better at every step.
CURVE = r"""
import time
import sweepherd
q = float(sweepherd.params()["q"])
for t in range(1, 21):
    sweepherd.log({"loss": q + 1.0 / t})
    time.sleep(0.25)
"""


def _config(**early: Any) -> dict[str, Any]:
    return {
        "program": "curve.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"q": {"values": [0.0, 0.5]}},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2, **early},
    }


@pytest.fixture
def store(tmp_path: Path) -> SweepStore:
    return create_sweep(tmp_path / "sweeps", parse_config(_config()))


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _claim(store: SweepStore, n: int) -> list[str]:
    with store.transaction() as txn:
        return [txn.claim_new({"q": float(i)}, "other-agent").id for i in range(n)]


def _write_live(store: SweepStore, run_id: str, history: list[float]) -> Path:
    path = store.run_dir(run_id) / LIVE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"run": run_id, "attempt": 1, "metric": "loss", "n": len(history), "history": history}
    path.write_text(json.dumps(doc))
    return path


def _own_trial(store: SweepStore, run_id: str, proc: subprocess.Popen[bytes], values: list[float]):
    metrics_file = store.run_dir(run_id) / "metrics.jsonl"
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    metrics_file.write_text("".join(json.dumps({"loss": v}) + "\n" for v in values))
    run = store.snapshot().runs[run_id]
    trial = Trial(run, Slot(0), proc, RunMetrics([JsonlSource(metrics_file)]), time.monotonic())
    trial.metrics.update()
    return trial


def _stopped(early: EarlyTermination, trial: Trial, store: SweepStore) -> list[Trial]:
    return [t for t, _ in early.to_stop([trial], store.snapshot())]


def test_own_trial_is_judged_against_the_live_files_of_other_runs(store, sleeper):
    mine, a, b = _claim(store, 3)
    trial = _own_trial(store, mine, sleeper, [1.0, 0.9])
    early = EarlyTermination(store, LIVE_FILE)
    assert early.to_stop([trial], store.snapshot()) == []  # alone: its own value is the threshold
    _write_live(store, a, [0.5, 0.4])
    _write_live(store, b, [0.6, 0.45, 0.3])
    assert early.to_stop([trial], store.snapshot()) == [
        (
            trial,
            "stopped early by hyperband: loss 0.9 after 2 values was worse than 0.45, the "
            "cut-off among the 3 runs that got as far",
        )
    ]  # 0.9 > sorted[.4 .45 .9][1]
    trial.stop_cause = StopCause.EARLY
    assert early.to_stop([trial], store.snapshot()) == []  # already stopping


def test_nothing_is_read_before_an_own_trial_reaches_the_first_band(store, sleeper):
    mine, other = _claim(store, 2)
    trial = _own_trial(store, mine, sleeper, [5.0])
    _write_live(store, other, [0.1, 0.1])
    early = EarlyTermination(store, LIVE_FILE)
    assert early.to_stop([trial], store.snapshot()) == []
    assert early._seen == {} and early._ended == {}  # no file was even looked at


def test_a_live_file_is_parsed_again_only_when_it_changed(store, sleeper):
    mine, other, third = _claim(store, 3)
    trial = _own_trial(store, mine, sleeper, [1.0, 1.0])
    _write_live(store, third, [0.2, 0.2])
    path = _write_live(store, other, [2.0, 2.0])  # band 2: .2 1 2 -> threshold 1: kept
    early = EarlyTermination(store, LIVE_FILE)
    assert early.to_stop([trial], store.snapshot()) == []
    st = path.stat()
    # Same size and mtime: taken as unchanged, so the (better) new values are not read yet.
    path.write_text(path.read_text().replace("2.0, 2.0", "0.1, 0.1"))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert early.to_stop([trial], store.snapshot()) == []
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert _stopped(early, trial, store) == [trial]


def test_an_ended_run_is_read_once_and_kept(store, sleeper):
    mine, other, third = _claim(store, 3)
    trial = _own_trial(store, mine, sleeper, [1.0, 1.0])
    _write_live(store, third, [0.2, 0.2])
    path = _write_live(store, other, [0.1, 0.1])
    with store.transaction() as txn:
        txn.record(RunResult(other, 1, RunState.FINISHED, 0, 0.1))
    early = EarlyTermination(store, LIVE_FILE)
    assert _stopped(early, trial, store) == [trial]
    path.unlink()  # an ended run's history cannot change: it is not looked at again
    assert _stopped(early, trial, store) == [trial]
    assert other in early._ended


def test_a_live_file_of_another_metric_or_broken_counts_as_no_history(store, sleeper):
    mine, a, b = _claim(store, 3)
    trial = _own_trial(store, mine, sleeper, [1.0, 1.0])
    _write_live(store, a, [0.1, 0.1])
    doc = json.loads((store.run_dir(a) / LIVE_FILE).read_text())
    (store.run_dir(a) / LIVE_FILE).write_text(json.dumps({**doc, "metric": "acc"}))
    (store.run_dir(b) / LIVE_FILE).write_text("{not json")
    assert EarlyTermination(store, LIVE_FILE).to_stop([trial], store.snapshot()) == []


# -- end to end --------------------------------------------------------------------------------


def _runs(store: SweepStore) -> list[Any]:
    return list(open_sweep(store.path, store.path.parent).snapshot().runs.values())


def test_real_agents_stop_the_poor_runs_early_and_let_the_good_ones_finish(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    (tmp_path / "curve.py").write_text(CURVE)
    qs = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    store = make_sweep(
        {"q": {"values": qs}},
        program="curve.py",
        early_terminate={"type": "hyperband", "min_iter": 3, "eta": 2},
    )
    agents = [start_agent(store, "-q", "--slots", "2", *FAST) for _ in range(2)]
    for proc in agents:
        assert proc.wait(timeout=180) == 0
    runs = {r.params["q"]: r for r in _runs(store)}
    assert sorted(runs) == qs
    states = {q: r.state for q, r in runs.items()}
    assert set(states.values()) <= {RunState.FINISHED, RunState.STOPPED}, states
    # The best two can never be above a threshold (see the module doc of early_terminate);
    # every run from 0.4 on is worse than the median of the runs before it at its first band.
    assert states[0.0] is states[0.1] is RunState.FINISHED, states
    assert all(states[q] is RunState.STOPPED for q in qs if q >= 0.4), states
    finished = [q for q, s in states.items() if s is RunState.FINISHED]
    stopped = [q for q, s in states.items() if s is RunState.STOPPED]
    assert max(finished) < min(stopped), states
    for q in stopped:
        run = runs[q]
        said = re.fullmatch(
            r"stopped early by hyperband: loss (\S+) after (\d+) values was worse than (\S+), "
            r"the cut-off among the (\d+) runs that got as far",
            run.reason or "",
        )
        assert said is not None, run.reason
        value, band, cut_off = float(said[1]), int(said[2]), float(said[3])
        live = json.loads((store.run_dir(run.id) / LIVE_FILE).read_text())
        assert 3 <= live["n"] < 20  # judged at a band, then cut short
        assert band in (3, 6, 12) and band <= live["n"] and int(said[4]) >= 2
        assert value == pytest.approx(live["history"][band - 1], rel=1e-5) and value > cut_off
        assert run.metric == live["last"]  # the value it had when stopped
    for q in finished:
        assert json.loads((store.run_dir(runs[q].id) / LIVE_FILE).read_text())["n"] == 20
