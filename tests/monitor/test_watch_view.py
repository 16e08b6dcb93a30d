"""The live view rendered for real sweeps in each phase, as an 80-column terminal would show it."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from monitor.helpers import Sweep, make_sweep
from sweepherd.monitor import (
    WatchCollector,
    WatchModel,
    ended_lines,
    plain_report,
    render_watch,
    status_line,
)

RANDOM = {
    "program": "train.py",
    "method": "random",
    "metric": {"name": "acc", "goal": "maximize"},
    "parameters": {"lr": {"min": 0.0, "max": 1.0}},
}


def render(model: WatchModel, **limits: int) -> str:
    console = Console(record=True, width=80, force_terminal=True, color_system="truecolor")
    console.print(render_watch(model, **limits))
    text = console.export_text()
    widths = [len(line) for line in text.splitlines()]
    assert max(widths) <= 80, text
    return text


def lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def test_an_empty_sweep(sweep: Sweep) -> None:
    model = WatchCollector(sweep.store).collect(now=1000.0)
    text = render(model)
    assert lines(text)[0].startswith("sweep sw1 (demo): grid, minimize loss")
    assert lines(text)[0].endswith("empty")
    assert "0/6 done   0%" in text
    assert "no runs yet" in text
    assert "running (" not in text and "best by" not in text and "failed (" not in text
    assert "slurm jobs" in text
    assert "no Slurm jobs recorded for this sweep" in text
    assert not model.finished


def _params(i: int) -> dict:
    return {"x": i % 3 + 1, "opt": {"lr": [0.1, 0.01][i // 3]}}


def test_a_running_sweep(sweep: Sweep) -> None:
    done = sweep.claim(_params(0), node="node1", gpus="0")
    sweep.finish(done, metric=0.75)
    a = sweep.claim(_params(1), node="node1", gpus="0")
    b = sweep.claim(_params(2), node="gpu-node-17", gpus="2,3")
    for step in range(3):
        sweep.log(a, step, loss=1.0 / (step + 1), other=step)
    sweep.log(b, 0, other=1)  # b has not logged the metric yet
    now = sweep.run(a.id).started_at + 65.0
    model = WatchCollector(sweep.store).collect(now=now)
    text = render(model)
    out = lines(text)
    assert out[0].endswith("running")
    assert "1/6 done  17%" in text
    assert "2 running  1 finished" in text
    assert "running (2)" in text
    row_a = next(line for line in out if line.startswith(a.id))
    assert row_a.split() == [a.id, "node1:0", "1", "1m05s", "0.33333", "3"]
    row_b = next(line for line in out if line.startswith(b.id))
    assert row_b.split()[1:3] == ["gpu-node-17:2,3", "1"]
    assert row_b.split()[-2:] == ["-", "1"]  # no metric yet, one row logged
    assert "best by loss (minimize)" in text
    best = next(line for line in out if line.strip().startswith("1 ") and done.id in line)
    assert best.split()[:3] == ["1", done.id, "0.75"]
    assert "x=1 opt={lr: 0.1}" in best
    assert "runs/min" in text and "ETA" in text


def test_a_finished_sweep(sweep: Sweep) -> None:
    metrics = [0.9, 0.2, 0.5, 0.4, 0.3, 0.1]
    for i, value in enumerate(metrics):
        run = sweep.claim(_params(i))
        sweep.finish(run, metric=value)
    model = WatchCollector(sweep.store, n_best=3).collect()
    text = render(model)
    assert lines(text)[0].endswith("done")
    assert "6/6 done 100%" in text
    assert "6 finished" in text
    assert "running (" not in text
    assert "ETA" not in text  # nothing left to estimate
    ranked = [line.split()[1] for line in lines(text) if line[:3].strip() in ("1", "2", "3")]
    assert ranked == [f"sw1-{i:04d}" for i in (5, 1, 4)]
    assert model.finished


def test_a_sweep_with_failures(sweep: Sweep) -> None:
    ok = sweep.claim(_params(0))
    sweep.finish(ok, metric=0.5)
    bad = sweep.claim(_params(1), node="node7")
    long = "ValueError: " + "a very long message " * 8
    sweep.write(bad, "stderr.log", "starting\nTraceback (most recent call last):\n" + long + "\n")
    sweep.finish(bad, "failed", exit_code=3, reason="exited with status 3")
    for i in (2, 3, 4, 5):
        other = sweep.claim(_params(i))
        sweep.finish(other, "failed", exit_code=1, reason="boom")
    model = WatchCollector(sweep.store, n_failures=3).collect()
    text = render(model)
    out = lines(text)
    assert "failed (5)" in text
    assert "1 finished  5 failed" in text
    newest_first = [line.split()[0] for line in out if " failed" in line and "sw1-" in line]
    assert newest_first == ["sw1-0005", "sw1-0004", "sw1-0003"]
    assert "… and 2 more failed runs" in text
    assert lines(text)[0].endswith("done")  # every grid point ran: failed ones are done too


def test_stderr_tail_is_cut_to_the_terminal_and_shows_the_latest_attempt(sweep: Sweep) -> None:
    bad = sweep.claim(_params(1), node="node7")
    with sweep.store.transaction() as txn:
        txn.finish(bad.id, 1, "preempted")
    sweep.claim_again(bad.id, node="node8")
    long = "ValueError: " + "a very long message " * 8
    banner = "--- sweepherd: attempt 2 on node8 at 2025-01-01T00:00:00 ---\n"
    sweep.write(bad, "stderr.log", "first attempt's error\n" + banner + "second\n" + long + "\n")
    sweep.finish(bad, "failed", exit_code=3, reason="exited with status 3")
    model = WatchCollector(sweep.store).collect()
    assert model.failures[0].stderr_tail == ("second", long.rstrip())
    text = render(model)
    assert "sw1-0000 failed (exit 3) on node8: exited with status 3" in text
    cut = next(line for line in lines(text) if "ValueError" in line)
    assert cut.startswith("  │ ValueError: a very long message")
    assert cut.endswith("…") and len(cut) == 80
    assert "first attempt" not in text


def test_a_cancelled_sweep(sweep: Sweep) -> None:
    run = sweep.claim(_params(0))
    sweep.cancel()
    assert WatchCollector(sweep.store).collect().state == "cancelled"
    sweep.finish(run, "killed", reason="sweep cancelled")
    model = WatchCollector(sweep.store).collect()
    assert lines(render(model))[0].endswith("cancelled")
    assert model.finished


def test_many_runs_in_flight_are_bounded(root: Path) -> None:
    sweep = make_sweep(root, RANDOM)
    for i in range(12):
        sweep.claim({"lr": i / 12}, node=f"n{i}")
    text = render(WatchCollector(sweep.store).collect(), max_running=4)
    assert "running (12)" in text
    assert len([line for line in lines(text) if line.startswith("sw1-")]) == 4
    assert "… and 8 more running" in text
    assert "12 runs done" not in text
    assert "0 runs done (no fixed total)" in text  # random search without run_cap


def test_plain_lines(sweep: Sweep) -> None:
    ok = sweep.claim(_params(0), node="node1", gpus="1")
    sweep.log(ok, 0, loss=0.5)
    sweep.store.heartbeat("agent-1")  # its agent is alive
    collector = WatchCollector(sweep.store)
    model = collector.collect(now=sweep.run(ok.id).started_at + 5)
    report = plain_report(model)
    assert report[0] == "sweep sw1 (demo): grid, minimize loss [running]"
    assert report[1].startswith("progress: 0/6 runs done (0%)")
    assert report[2] == "states: 1 running"
    assert report[3] == f"running: {ok.id} on node1:1, try 1, 5s, loss 0.5 (1 steps)"
    assert report[-1] == "slurm: no Slurm jobs recorded for this sweep"
    assert status_line(model).startswith(
        "sweep sw1 (demo): grid, minimize loss [running] · 0/6 runs done (0%) · 1 running"
    )
    sweep.write(ok, "stderr.log", "oops\n")
    sweep.finish(ok, "failed", exit_code=2, reason="exited with status 2")
    model = collector.collect()
    assert ended_lines(model)[0].startswith(f"{ok.id} failed (exit 2) in ")
    assert ended_lines(model)[0].endswith("on node1: exited with status 2")
    assert ended_lines(model)[1] == "  stderr: oops"
    assert all("\x1b" not in line for line in plain_report(model))
