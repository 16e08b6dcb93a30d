"""The agent end to end: real `sweepherd agent` processes, real trials, one sweep directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from support.agents import SweepFactory, marks, proc_state, wait_for
from sweepherd.agent._agent import NOTHING_LOGGED
from sweepherd.runs import MAX_LOSSES, MAX_TIMEOUTS, TIME_LIMIT_SIGNAL_ENV, RunState
from sweepherd.store import SweepStore, open_sweep

FAST = ("--heartbeat", "0.3", "--lost-after", "2", "--stop-grace", "5")


def _runs(store: SweepStore) -> list:
    return list(open_sweep(store.path, store.path.parent).snapshot().runs.values())


def _end_events(store: SweepStore) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in (store.path / "journal.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["e"] == "end" and event["state"] == "finished":
            counts[event["run"]] += 1
    return counts


def test_sixteen_agents_run_every_grid_point_exactly_once(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    store = make_sweep({"x": {"min": 0, "max": 199}})  # int_uniform grid: 200 points
    agents = [start_agent(store, "-q", *FAST) for _ in range(16)]
    for proc in agents:
        assert proc.wait(timeout=300) == 0
    runs = _runs(store)
    assert len(runs) == 200
    assert all(r.state is RunState.FINISHED for r in runs)
    assert sorted(r.params["x"] for r in runs) == list(range(200))
    assert all(r.metric == float(r.params["x"]) ** 2 for r in runs)
    executions = marks(tmp_path)
    assert len(executions) == 200  # each point ran once: no duplicate, no re-run
    assert Counter(run_id for run_id, _ in executions).most_common(1)[0][1] == 1
    assert max(_end_events(store).values()) == 1
    assert len({r.agent for r in runs}) > 1  # the work really was shared


def test_agent_killed_mid_run_its_run_is_rerun_and_nothing_is_lost(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    store = make_sweep({"x": {"values": [1, 2, 3, 4, 5, 6]}, "sleep_s": {"value": 1.0}})
    victim = start_agent(store, "-q", *FAST)
    wait_for(lambda: any(r.state is RunState.FINISHED for r in _runs(store)), what="a finished run")
    survivor = start_agent(store, "-q", *FAST)
    prefix = f"-{victim.pid}-"

    def victim_trial() -> str | None:
        started = {run_id for run_id, _ in marks(tmp_path)}
        for r in _runs(store):
            if r.state is RunState.RUNNING and prefix in (r.agent or "") and r.id in started:
                return r.id
        return None

    wait_for(lambda: victim_trial() is not None, what="a trial of the victim running")
    killed_run = victim_trial()
    finished_before = {r.id: r for r in _runs(store) if r.state is RunState.FINISHED}
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert survivor.wait(timeout=120) == 0

    runs = {r.id: r for r in _runs(store)}
    assert len(runs) == 6
    assert all(r.state is RunState.FINISHED for r in runs.values())
    assert runs[killed_run].attempt == 2  # the same run, started again
    assert prefix not in (runs[killed_run].agent or "")
    for run_id, before in finished_before.items():  # nothing finished was lost or redone
        assert runs[run_id].attempt == 1
        assert runs[run_id].ended_at == before.ended_at
    counts = Counter(run_id for run_id, _ in marks(tmp_path))
    assert counts[killed_run] == 2
    assert all(n == 1 for run_id, n in counts.items() if run_id != killed_run)
    assert max(_end_events(store).values()) == 1


def test_a_run_that_kills_its_agent_every_time_is_given_up_and_the_sweep_ends(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    store = make_sweep({"x": {"values": [1, 2, 3]}, "kill_agent_x": {"value": 2}})
    codes = []
    for _ in range(MAX_LOSSES + 2):  # one agent after another, as a requeued job would start
        codes.append(start_agent(store, "-q", *FAST).wait(timeout=120))
        if codes[-1] == 0:
            break
        time.sleep(1.5)  # its heartbeat goes quiet: the next agent waits for its run to be lost
    assert codes == [-signal.SIGKILL] * MAX_LOSSES + [0]  # the last one did not wait for it
    runs = {r.params["x"]: r for r in _runs(store)}
    poison = runs[2]
    assert (poison.state, poison.losses, poison.attempt) == (RunState.LOST, MAX_LOSSES, MAX_LOSSES)
    assert runs[1].state is RunState.FINISHED and runs[3].state is RunState.FINISHED
    assert Counter(run_id for run_id, _ in marks(tmp_path))[poison.id] == MAX_LOSSES
    assert max(_end_events(store).values()) == 1


def test_processes_a_trial_leaves_in_its_group_are_stopped_before_its_slot_is_reused(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    store = make_sweep({"x": {"values": [1, 2]}, "leave_child": {"value": True}})
    agent = start_agent(store, "-q", "--heartbeat", "0.3", "--stop-grace", "1")
    assert agent.wait(timeout=60) == 0
    runs = {r.id: r for r in _runs(store)}
    assert all(r.state is RunState.FINISHED for r in runs.values())
    children = {p.name: int(p.read_text()) for p in (tmp_path / "children").iterdir()}
    assert set(children) == set(runs)
    for pid in children.values():  # each SIGKILLed after the grace (it ignores SIGTERM)
        assert not _alive(pid), f"process {pid} left by a trial still runs"
    first, second = sorted(runs.values(), key=lambda r: r.seq)
    assert (second.started_at or 0) >= (first.started_at or 0) + 1.0  # the slot waited


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def test_sigterm_preempts_runs_and_the_next_agent_resumes_them(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    store = make_sweep({"x": {"values": [1, 2]}, "sleep_first_s": {"value": 60}})
    agent = start_agent(store, "-q", "--slots", "2", *FAST)
    wait_for(lambda: len(marks(tmp_path)) == 2, what="two trials started")
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 75  # "requeue me"
    runs = _runs(store)
    assert [r.state for r in runs] == [RunState.PREEMPTED, RunState.PREEMPTED]
    ids = [r.id for r in runs]

    resumed = start_agent(store, "-q", "--slots", "2", *FAST)
    assert resumed.wait(timeout=60) == 0
    runs = _runs(store)
    assert [r.id for r in runs] == ids  # the same run ids
    assert all(r.state is RunState.FINISHED and r.attempt == 2 for r in runs)
    second = [
        json.loads(p.read_text())
        for p in (tmp_path / "marks").iterdir()
        if p.name.split(".")[1] == "2"
    ]
    assert len(second) == 2
    assert all(m["env"]["WANDB_RESUME"] == "allow" for m in second)
    assert {m["env"]["WANDB_RUN_ID"] for m in second} == set(ids)


@pytest.mark.parametrize(
    ("sig", "time_limit"),
    [(signal.SIGUSR1, True), (signal.SIGWINCH, True), (signal.SIGTERM, False)],
)
def test_a_time_limit_stop_counts_for_runs_that_keep_no_checkpoint(
    make_sweep: SweepFactory,
    start_agent,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sig: int,
    time_limit: bool,
) -> None:
    """USR1 (Slurm's warning, as sweepherd's jobs ask for it) or the signal --all-nodes names
    for it (SIGWINCH) means the job's time limit; SIGTERM (a preemption) does not. Only a run
    that starts over each time (nothing in $SWEEPHERD_CHECKPOINT_DIR) counts toward the cap."""
    monkeypatch.setenv(TIME_LIMIT_SIGNAL_ENV, str(int(signal.SIGWINCH)))  # as --all-nodes does
    params = {"x": {"values": [1, 2]}, "checkpoint_x": {"value": 2}}
    store = make_sweep({**params, "sleep_first_s": {"value": 60}})
    agent = start_agent(store, "-q", "--slots", "2", *FAST)
    wait_for(lambda: len(marks(tmp_path)) == 2, what="two trials started")
    agent.send_signal(sig)
    assert agent.wait(timeout=30) == 75  # "requeue me"
    by_x = {r.params["x"]: r for r in _runs(store)}
    assert {r.state for r in by_x.values()} == {RunState.PREEMPTED}
    assert (by_x[1].timeouts, by_x[2].timeouts) == (int(time_limit), 0)
    assert all(r.will_run_again for r in by_x.values())  # once is far from the cap
    reason = by_x[1].reason or ""
    assert ("time limit (1 of 3" in reason) is time_limit


def test_no_requeue_is_asked_for_when_the_last_time_limit_strike_leaves_nothing_to_run(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    """The run's third time limit without a checkpoint gives it up, and the grid has nothing
    else: exit 0, or Slurm would requeue a whole allocation that finds nothing to do."""
    store = make_sweep({"x": {"values": [1]}, "sleep_s": {"value": 60}})
    with store.transaction(agent="earlier") as txn:  # two time limits already
        run = txn.claim_new({"x": 1, "sleep_s": 60}, agent="earlier")
    for attempt in range(1, MAX_TIMEOUTS):
        with store.transaction(agent="earlier") as txn:
            txn.finish(run.id, attempt, RunState.PREEMPTED, timeout=True)
            txn.claim_again(run.id, agent="earlier")
    with store.transaction(agent="earlier") as txn:
        txn.finish(run.id, MAX_TIMEOUTS, RunState.PREEMPTED, timeout=False)  # a preemption
    agent = start_agent(store, "-q", *FAST)
    wait_for(lambda: len(marks(tmp_path)) == 1, what="the trial started")
    agent.send_signal(signal.SIGUSR1)  # Slurm's warning before the time limit
    assert agent.wait(timeout=30) == 0
    (gave_up,) = _runs(store)
    assert gave_up.state is RunState.PREEMPTED and gave_up.gave_up


def test_a_terminal_resize_does_not_stop_an_agent_it_was_not_named_to(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    """SIGWINCH stops only agents started by --all-nodes: a terminal sends it on every resize
    to an agent run by hand in tmux."""
    store = make_sweep({"x": {"values": [1]}, "sleep_first_s": {"value": 60}})
    agent = start_agent(store, "-q", *FAST)
    wait_for(lambda: len(marks(tmp_path)) == 1, what="the trial started")
    agent.send_signal(signal.SIGWINCH)
    time.sleep(1.0)
    assert agent.poll() is None
    assert [r.state for r in _runs(store)] == [RunState.RUNNING]
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 75


def test_a_trial_that_ended_by_itself_before_the_stop_signal_counts_as_finished(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    """Slurm's warning may come while the agent is busy (waiting for the lock, suggesting) and
    has not yet seen its trial exit: the trial finished on its own and must not run again."""
    # 3 s: time to stop the agent before the trial ends even on a loaded machine. (It also
    # failed under load when the signal handler ran inside poll(), after the reaping and
    # before the exit status was stored: tests/agent/test_trial.py has that case.)
    store = make_sweep({"x": {"values": [3]}, "sleep_s": {"value": 3.0}})
    agent = start_agent(store, "-q", *FAST)
    wait_for(lambda: len(marks(tmp_path)) == 1, what="the trial started")
    (mark,) = (tmp_path / "marks").iterdir()
    trial_pid = int(mark.name.rsplit(".", 1)[1])
    agent.send_signal(signal.SIGSTOP)  # the agent is busy: it cannot reap its trial
    try:
        wait_for(lambda: proc_state(trial_pid) == "Z", what="the trial to exit (a zombie)")
        agent.send_signal(signal.SIGUSR1)  # delivered when it runs again
    finally:
        agent.send_signal(signal.SIGCONT)
    assert agent.wait(timeout=30) == 0  # nothing to requeue
    (run,) = _runs(store)
    assert (run.state, run.attempt, run.metric) == (RunState.FINISHED, 1, 9.0)
    assert len(marks(tmp_path)) == 1


def test_a_run_folder_that_cannot_be_made_gives_the_run_back_and_stops_cleanly(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    """An inode quota or a stray file: the agent gives the run back and stops its others."""
    store = make_sweep({"x": {"values": [0, 1]}, "sleep_first_s": {"value": 60}})
    stray = store.runs_dir / f"{store.sweep_id}-0001"
    stray.write_text("not a folder")
    agent = start_agent(store, "-q", "--slots", "2", *FAST)
    assert agent.wait(timeout=30) == 4  # the store's error, printed once
    log = (tmp_path / "agent-logs" / "agent-0.log").read_text()
    assert log.count("error: ") == 1 and "Traceback" not in log
    runs = {r.id: r for r in _runs(store)}
    assert runs[f"{store.sweep_id}-0000"].state is RunState.PREEMPTED  # stopped, not killed
    assert runs[stray.name].state is RunState.LOST
    assert "could not start" in (runs[stray.name].reason or "")

    stray.unlink()
    assert start_agent(store, "-q", "--slots", "2", *FAST).wait(timeout=60) == 0
    runs = {r.id: r for r in _runs(store)}
    assert len(runs) == 2 and all(r.state is RunState.FINISHED for r in runs.values())
    assert max(_end_events(store).values()) == 1


def test_cancel_stops_running_runs_and_agents_exit(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    store = make_sweep({"x": {"values": [1, 2, 3]}, "sleep_s": {"value": 60}})
    agent = start_agent(store, "-q", "--slots", "2", *FAST)
    wait_for(lambda: len(marks(tmp_path)) == 2, what="two trials started")
    out = subprocess.run(
        [sys.executable, "-m", "sweepherd", "cancel", str(store.path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "cancelled" in out.stdout
    assert agent.wait(timeout=30) == 0
    runs = _runs(store)
    assert [r.state for r in runs] == [RunState.KILLED, RunState.KILLED]  # no third run started


def test_a_torn_last_journal_line_does_not_stop_the_sweep(
    make_sweep: SweepFactory, start_agent
) -> None:
    store = make_sweep({"x": {"values": [1, 2, 3, 4]}})
    assert start_agent(store, "-q", "--count", "2", *FAST).wait(timeout=60) == 0
    with (store.path / "journal.jsonl").open("a") as f:
        f.write('{"e":"end","t":1,"run":"')  # a writer died in the middle of a line
    assert start_agent(store, "-q", *FAST).wait(timeout=60) == 0
    runs = _runs(store)
    assert len(runs) == 4
    assert all(r.state is RunState.FINISHED for r in runs)


def test_a_hostile_parameter_value_arrives_as_one_untouched_argument(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    victim = tmp_path / "x"
    victim.write_text("still here")
    value = "a b; rm -rf x"
    store = make_sweep({"s": {"value": value}})
    assert start_agent(store, "-q", *FAST).wait(timeout=60) == 0
    (mark,) = (tmp_path / "marks").iterdir()
    seen = json.loads(mark.read_text())
    assert f"--s={value}" in seen["argv"]
    assert seen["params"]["s"] == value
    assert victim.read_text() == "still here"


def test_each_trial_sees_only_its_gpu(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    store = make_sweep({"x": {"values": list(range(8))}, "sleep_s": {"value": 0.3}})
    agent = start_agent(store, "-q", "--gpus", "0,1", "--trials-per-gpu", "2", *FAST)
    assert agent.wait(timeout=60) == 0
    runs = _runs(store)
    assert {r.gpus for r in runs} == {"0", "1"}
    for mark in (tmp_path / "marks").iterdir():
        run_id = mark.name.split(".")[0]
        env = json.loads(mark.read_text())["env"]
        assert env["CUDA_VISIBLE_DEVICES"] == next(r.gpus for r in runs if r.id == run_id)


def test_a_metric_logged_only_as_nan_is_named_so(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    """A diverged run: 'never logged' would send the user looking for a typo."""
    store = make_sweep({"x": {"values": [1]}, "nan_metric": {"value": True}})
    assert start_agent(store, "-q", *FAST).wait(timeout=60) == 0
    (run,) = _runs(store)
    assert run.state is RunState.FINISHED and run.metric is None
    assert run.reason == "metric 'loss' was only NaN, infinite or not a number"


def test_failing_command_and_missing_metric_are_recorded_with_their_reasons(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    store = make_sweep({"exit_code": {"values": [0, 3]}, "no_metric": {"values": [False, True]}})
    assert start_agent(store, "-q", *FAST).wait(timeout=60) == 0
    runs = {(r.params["exit_code"], r.params["no_metric"]): r for r in _runs(store)}
    ok = runs[(0, False)]
    assert ok.state is RunState.FINISHED and ok.metric == 0.0 and ok.reason is None
    silent = runs[(0, True)]
    assert silent.state is RunState.FINISHED and silent.metric is None
    assert silent.reason == f"metric 'loss' was never logged ({NOTHING_LOGGED})"
    failed = runs[(3, False)]
    assert failed.state is RunState.FAILED and failed.exit_code == 3
    assert failed.reason == "exit status 3: trial failing on purpose with 3"
    run_dir = store.path / "runs" / failed.id  # its output is kept
    assert "hello from" in (run_dir / "stdout.log").read_text()
    assert "failing on purpose" in (run_dir / "stderr.log").read_text()


def test_an_agent_gives_up_when_its_first_runs_all_fail(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    store = make_sweep({"x": {"min": 1, "max": 20}, "exit_code": {"value": 1}})
    agent = start_agent(store, "-q", *FAST)
    assert agent.wait(timeout=60) == 5
    log = (tmp_path / "agent-logs" / "agent-0.log").read_text()
    assert log.count("error: ") == 1
    assert "the first 5 runs of this agent all failed" in log
    assert "Traceback" not in log
    assert len(_runs(store)) == 5  # it stopped burning through the grid


def test_the_agent_publishes_the_metric_while_the_run_goes(
    make_sweep: SweepFactory, start_agent, tmp_path: Path
) -> None:
    script = tmp_path / "slow.py"
    script.write_text(
        "import time, sweepherd\n"
        "for i in range(3):\n"
        "    sweepherd.log({'loss': 10.0 - i})\n"
        "    time.sleep(0.4)\n"
        "time.sleep(60)\n"
    )
    store = make_sweep({"x": {"value": 1}}, program="slow.py")
    agent = start_agent(store, "-q", "--stop-grace", "2", *FAST[:4])
    live = None

    def three_values() -> bool:
        nonlocal live
        paths = list((store.path / "runs").glob("*/live.json"))
        if not paths:
            return False
        live = json.loads(paths[0].read_text())
        return live["n"] == 3

    wait_for(three_values, what="three values in live.json")
    assert live is not None
    assert live["history"] == [10.0, 9.0, 8.0] and live["last"] == 8.0
    assert _runs(store)[0].state is RunState.RUNNING  # seen before the run ended
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=30) == 75


def _fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` completely; return the filler file."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)
    return filler


def test_a_result_written_while_the_disk_is_full_is_kept_and_written_later(
    tmp_path: Path, start_agent
) -> None:
    from sweepherd.config import parse_config
    from sweepherd.store import create_sweep

    # The trial logs its metric first, then writes nothing while the disk is full.
    (tmp_path / "quiet.py").write_text(
        "import os, time, sweepherd\n"
        "p = sweepherd.params()\n"
        "os.makedirs('marks', exist_ok=True)\n"
        "open(f\"marks/{os.environ['SWEEPHERD_RUN_ID']}.{os.environ['SWEEPHERD_ATTEMPT']}.0\","
        " 'w').close()\n"
        "sweepherd.log({'loss': p['x'] ** 2})\n"
        "time.sleep(1.5)\n"
    )
    root = tmp_path / "small"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(root)], check=True)
    agent = None
    try:
        config = parse_config(
            {
                "program": "quiet.py",
                "method": "grid",
                "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"x": {"values": [2, 3]}},
            }
        )
        store = create_sweep(root, config, extra_meta={"workdir": str(tmp_path)})
        agent = start_agent(store, "-q", *FAST)
        wait_for(lambda: len(marks(tmp_path)) == 1, what="the first trial started")
        filler = _fill(root)
        journal = store.path / "journal.jsonl"
        time.sleep(3)  # the trial has ended; its result cannot be written
        assert '"e":"end"' not in journal.read_text()
        assert agent.poll() is None  # the agent waits, holding the result
        filler.unlink()
        assert agent.wait(timeout=60) == 0
        runs = _runs(store)
        assert [(r.state, r.metric) for r in runs] == [
            (RunState.FINISHED, 4.0),
            (RunState.FINISHED, 9.0),
        ]
        assert max(_end_events(store).values()) == 1
        assert Counter(run_id for run_id, _ in marks(tmp_path)) == {r.id: 1 for r in runs}
    finally:
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait()
        subprocess.run(["umount", str(root)], check=True)
