"""The live view's collector reads only what changed: proved by counting opens and bytes.

Two independent counts: the collector's own :class:`IoStats`, and Python's audit events for
every file opened or directory listed under the sweep (``opened_files``), which no code of
ours can hide from.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from monitor.helpers import Sweep, make_sweep, opened_files
from sweepherd.errors import SlurmError
from sweepherd.launch.slurm import JobState, parse_squeue, squeue_jobs, sweep_jobs
from sweepherd.monitor import WatchCollector

CAPTURED = Path(__file__).parents[1] / "launch" / "slurm" / "captured"


def _running_sweep(root: Path, n: int = 3) -> tuple[Sweep, list]:
    sweep = make_sweep(root)
    runs = []
    for i in range(n):
        run = sweep.claim({"x": i + 1, "opt": {"lr": 0.1}}, node=f"node{i}", gpus=str(i))
        for step in range(4):
            sweep.log(run, step, loss=10.0 * (i + 1) / (step + 1))
        runs.append(run)
    return sweep, runs


def test_idle_frames_open_no_file_and_read_no_byte(root: Path) -> None:
    sweep, runs = _running_sweep(root)
    collector = WatchCollector(sweep.store, heartbeat_every_s=1e9)
    first = collector.collect(now=1000.0)
    assert [r.latest for r in first.running] == [2.5, 5.0, 7.5]
    before = collector.stats.copy()
    journal_reads = collector.n_journal_reads
    with opened_files(sweep.path) as opened:
        for i in range(5):
            model = collector.collect(now=1001.0 + i)
    assert opened == []  # not one open() or listing under the sweep in five frames
    assert collector.stats.n_open == before.n_open
    assert collector.stats.n_bytes == before.n_bytes
    assert collector.n_journal_reads == journal_reads
    # A frame costs a bounded number of stat calls: the journal, and per running run its
    # metrics file and its wandb folder (or, without wandb, the agent's live.json).
    per_run = 2
    assert collector.stats.n_stat - before.n_stat == 5 * (1 + per_run * len(runs))
    assert [r.latest for r in model.running] == [2.5, 5.0, 7.5]


def test_a_new_metric_line_is_the_only_thing_read(root: Path) -> None:
    sweep, runs = _running_sweep(root)
    collector = WatchCollector(sweep.store, heartbeat_every_s=1e9)
    collector.collect(now=1000.0)
    before = collector.stats.copy()
    metrics = sweep.store.runs_dir / runs[1].id / "metrics.jsonl"
    size = metrics.stat().st_size
    sweep.log(runs[1], 4, loss=0.125)
    appended = metrics.stat().st_size - size
    with opened_files(sweep.path) as opened:
        model = collector.collect(now=1001.0)
    assert opened == [("open", str(metrics))]
    assert collector.stats.n_open - before.n_open == 1
    assert collector.stats.n_bytes - before.n_bytes == appended
    assert model.running[1].latest == 0.125
    assert model.running[1].n_logged == 5


def test_a_half_written_line_waits_and_is_never_read_twice(root: Path) -> None:
    sweep, runs = _running_sweep(root, n=1)
    collector = WatchCollector(sweep.store, heartbeat_every_s=1e9)
    collector.collect(now=1000.0)
    line = json.dumps({"_step": 9, "loss": 0.5}) + "\n"
    path = sweep.write(runs[0], "metrics.jsonl", line[:7])
    before = collector.stats.copy()
    assert collector.collect(now=1001.0).running[0].latest == 2.5  # not a row yet
    sweep.write(runs[0], "metrics.jsonl", line[7:])
    assert collector.collect(now=1002.0).running[0].latest == 0.5
    assert collector.stats.n_bytes - before.n_bytes == len(line)
    assert path.stat().st_size == collector._followers[runs[0].id]._jsonl.file.offset


def test_the_journal_is_read_when_it_grows_and_ended_runs_are_no_longer_followed(
    root: Path,
) -> None:
    sweep, runs = _running_sweep(root)
    collector = WatchCollector(sweep.store, heartbeat_every_s=1e9)
    collector.collect(now=1000.0)
    reads = collector.n_journal_reads
    sweep.finish(runs[0], metric=2.5)
    model = collector.collect(now=1001.0)
    assert collector.n_journal_reads == reads + 1
    assert [r.run_id for r in model.running] == [runs[1].id, runs[2].id]
    assert runs[0].id not in collector._followers
    assert [r.id for r in model.ended] == [runs[0].id]
    assert collector.collect(now=1002.0).ended == ()  # reported once
    assert collector.n_journal_reads == reads + 1


def test_a_failed_runs_stderr_is_read_once(root: Path) -> None:
    sweep = make_sweep(root)
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    stderr = sweep.write(
        run, "stderr.log", "Traceback (most recent call last):\nValueError: bad lr\n"
    )
    sweep.finish(run, "failed", exit_code=1, reason="exited with status 1")
    collector = WatchCollector(sweep.store, heartbeat_every_s=1e9)
    with opened_files(sweep.path) as opened:
        models = [collector.collect(now=1000.0 + i) for i in range(4)]
    assert [p for e, p in opened if p == str(stderr)] == [str(stderr)]
    assert models[-1].failures[0].stderr_tail == (
        "Traceback (most recent call last):",
        "ValueError: bad lr",
    )


def test_heartbeats_are_read_at_most_every_interval_and_only_when_they_changed(
    root: Path,
) -> None:
    sweep, _ = _running_sweep(root, n=1)
    sweep.store.heartbeat("agent-1", node="node0")
    collector = WatchCollector(sweep.store, heartbeat_every_s=10.0)
    hb = sweep.store.agents_dir / "agent-1.json"
    t0 = json.loads(hb.read_bytes())["t"]

    def heartbeat_opens(now: float) -> int:
        with opened_files(sweep.store.agents_dir) as opened:
            collector.collect(now=now)
        return len([p for e, p in opened if e == "open"])

    assert heartbeat_opens(t0) == 1
    assert collector.collect(now=t0 + 1).n_agents_alive == 1
    sweep.store.heartbeat("agent-1", node="node0")  # the agent beats again
    assert heartbeat_opens(t0 + 5) == 0  # too soon
    assert heartbeat_opens(t0 + 11) == 1  # due, and changed
    assert heartbeat_opens(t0 + 22) == 0  # due, but the folder did not change
    model = collector.collect(now=t0 + 200)  # the heartbeat is old now: the agent is silent
    assert model.n_agents_alive == 0
    assert model.running[0].agent_silent_s == pytest.approx(200, abs=2)


def _sweep_jobs(query: Callable[[Sequence[str]], Sequence[JobState]] = squeue_jobs):
    return functools.partial(sweep_jobs, query=query)


def test_slurm_is_not_asked_when_the_sweep_has_no_job(root: Path) -> None:
    sweep, _ = _running_sweep(root, n=1)
    collector = WatchCollector(sweep.store, slurm_jobs=_sweep_jobs(), slurm_every_s=0.0)
    model = collector.collect(now=1000.0)
    assert collector.n_slurm_queries == 0
    assert model.slurm.note == "no Slurm jobs recorded for this sweep"


def test_without_slurm_the_panel_says_so(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = make_sweep(root)
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}}, job="4242")
    sweep.record_job("4242", kind="submit", nodes=2)
    monkeypatch.setenv("PATH", str(root))  # no squeue here: the real squeue_jobs fails
    collector = WatchCollector(sweep.store, slurm_jobs=_sweep_jobs(), slurm_every_s=15.0)
    model = collector.collect(now=1000.0)
    assert not model.slurm.available
    assert model.slurm.note is not None
    assert model.slurm.note.startswith("Slurm is not available here: squeue not found")
    (row,) = model.slurm.rows
    assert (row.job_id, row.state, row.n_running) == ("4242", "?", 1)
    # Asked again only when due, or at once when the sweep records a new job.
    collector.collect(now=1005.0)
    assert collector.n_slurm_queries == 1
    collector.collect(now=1016.0)
    assert collector.n_slurm_queries == 2
    sweep.record_job("4243", kind="scale")
    collector.collect(now=1017.0)
    assert collector.n_slurm_queries == 3
    sweep.finish(run, metric=1.0)
    assert collector.collect(now=1018.0).slurm.rows[0].n_running == 0  # joined every frame


def test_slurm_rows_join_the_journal_with_squeue(root: Path) -> None:
    """Slurm's answer is squeue output captured from the real Slurm 22.05 (parsing only)."""
    states = parse_squeue((CAPTURED / "squeue_mixed.txt").read_text())
    plain = next(s for s in states if s.array_job_id is None)
    array_id = next(s.array_job_id for s in states if s.array_job_id is not None)
    task = next(s for s in states if s.array_job_id == array_id and s.array_task_id is not None)
    sweep = make_sweep(root)
    sweep.record_job(plain.job_id, kind="submit")
    sweep.record_job(array_id, kind="scale")
    sweep.claim({"x": 1, "opt": {"lr": 0.1}}, job=task.job_id)
    sweep.claim({"x": 2, "opt": {"lr": 0.1}}, job="999999")  # a job Slurm has forgotten
    asked: list[list[str]] = []

    def query(ids: Sequence[str]) -> list[JobState]:
        asked.append(list(ids))
        return [s for s in states if {s.job_id, s.raw_job_id, s.array_job_id} & set(ids)]

    model = WatchCollector(sweep.store, slurm_jobs=_sweep_jobs(query)).collect(now=1000.0)
    assert asked == [[plain.job_id, array_id, task.job_id, "999999"]]
    rows = {r.job_id: r for r in model.slurm.rows}
    assert (rows[plain.job_id].state, rows[plain.job_id].kind) == (plain.state, "submit")
    tasks = [s for s in states if s.array_job_id == array_id]
    for s in tasks:  # the array expands to its tasks (and pending range), each once
        assert (rows[s.job_id].state, rows[s.job_id].kind) == (s.state, "scale")
    assert rows[task.job_id].n_running == 1
    assert rows["999999"].state == "ENDED"
    assert len(model.slurm.rows) == 1 + len(tasks) + 1
    text = render_text(model)
    assert f"{task.job_id}" in text and "ENDED" in text


def test_squeue_failure_is_a_note_not_an_error(root: Path) -> None:
    sweep = make_sweep(root)
    sweep.record_job("77")

    def broken(ids: Sequence[str]) -> list[JobState]:
        raise SlurmError("squeue did not answer within 10 s.")

    model = WatchCollector(sweep.store, slurm_jobs=_sweep_jobs(broken)).collect(now=1.0)
    assert model.slurm.note == "Slurm is not available here: squeue did not answer within 10 s."
    assert [r.state for r in model.slurm.rows] == ["?"]


def render_text(model: object) -> str:
    from rich.console import Console

    from sweepherd.monitor import render_watch

    console = Console(record=True, width=80)
    console.print(render_watch(model))  # type: ignore[arg-type]
    return console.export_text()


def test_a_run_without_a_folder_yet_is_no_error(root: Path) -> None:
    sweep = make_sweep(root)
    run = sweep.claim({"x": 1, "opt": {"lr": 0.1}})
    assert not (sweep.store.runs_dir / run.id).exists()  # claimed; the agent has not spawned yet
    model = WatchCollector(sweep.store).collect(now=1.0)
    assert model.running[0].latest is None
    assert model.running[0].n_logged == 0
