"""SlurmLauncher on the real cluster: a sweep survives its job being preempted (Slurm's warning
signal, then requeue) and one of its jobs being cancelled; and the options record scale reuses.

Slurm's warning signal is delivered as Slurm delivers it before a time limit, to the batch
shell, with ``scancel --signal=USR1 --batch`` (a real time limit takes 60-90 s on Slurm 22.05).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from support.slurm_sweeps import (
    FAST_AGENT,
    executions,
    finished_results,
    journal_events,
    n_executions,
    poll,
    runs,
    scancel_at_end,
    write_sweep,
)
from sweepherd.cli.main import main
from sweepherd.errors import ConfigError
from sweepherd.launch.slurm import JobState, SbatchOptions, SlurmLauncher, scancel, squeue_jobs
from sweepherd.runs import MAX_TIMEOUTS, RunState

AGENT_ARGS = tuple(FAST_AGENT.split())


def test_options_record_round_trip_with_overrides() -> None:
    options = SbatchOptions(
        sweep_dir=Path("/sweeps/a"),
        nodes=3,
        gpus_per_node=2,
        setup=("module load x",),
        sbatch_args=("--exclusive",),
        env={"A": "1"},
        agent_args=("--lost-after", "9"),
    )
    record = options.to_record()
    assert "sweep_dir" not in record and record["setup"] == ["module load x"]
    assert SbatchOptions.from_record(Path("/sweeps/a"), record) == options
    changed = SbatchOptions.from_record(
        Path("/sweeps/b"), {**record, "from_a_newer_version": 1}, time="1:00:00", qos=None
    )
    assert (changed.sweep_dir, changed.time, changed.qos, changed.nodes) == (
        Path("/sweeps/b"),
        "1:00:00",
        None,
        3,
    )
    with pytest.raises(ConfigError, match="trials_per_gpu"):
        SbatchOptions.from_record(Path("/s"), record, trials_per_gpu=0)


def _ended(job_id: str) -> list[JobState]:
    states = squeue_jobs([job_id])
    return states if states and all(s.is_terminal for s in states) else []


@pytest.mark.slurm
def test_a_preempted_job_requeues_and_resumes_its_runs_with_the_same_ids(
    slurm_cluster: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    # Attempt 1 of each run would take 120 s: only a resume (attempt 2, 1 s) can finish them.
    config = write_sweep(
        tmp_path,
        {"x": {"values": [1, 2]}, "sleep_s": {"value": 1}, "sleep_first_s": {"value": 120}},
    )
    scancel_at_end(request, tmp_path / "sweeps")
    done = SlurmLauncher.submit(config, tmp_path / "sweeps", {"slots": 2, "agent_args": AGENT_ARGS})
    assert done.store is not None and done.job_id is not None
    store, job = done.store, done.job_id
    poll(lambda: len(executions(tmp_path)) == 2, 60, "both trials running")

    scancel([job], signal="USR1", batch=True)  # Slurm's warning before a time limit

    def both_preempted() -> list[dict[str, object]]:
        ends = [e for e in journal_events(store, "end") if e["state"] == "preempted"]
        return ends if len(ends) == 2 else []

    preempted = poll(both_preempted, 30, "both runs to be marked preempted")
    assert {e["attempt"] for e in preempted} == {1}
    [state] = poll(lambda: _ended(job), 120, "the requeued job to finish")
    assert (state.state, state.exit_code, state.restarts) == ("COMPLETED", 0, 1)

    final = runs(store)
    assert sorted(final) == sorted(e["run"] for e in preempted)  # the same run ids, no new runs
    assert {(r.state, r.attempt) for r in final.values()} == {(RunState.FINISHED, 2)}
    assert n_executions(tmp_path) == Counter(dict.fromkeys(final, 2))  # ran twice each, no more
    assert max(finished_results(store).values()) == 1
    for e in executions(tmp_path):
        env = e["env"]
        if e["attempt"] == 1:
            assert env.get("SLURM_RESTART_COUNT", "0") == "0" and "WANDB_RESUME" not in env
            assert e["end"] is None  # stopped before it could finish
        else:
            assert (env["SLURM_RESTART_COUNT"], env["WANDB_RESUME"]) == ("1", "allow")
            assert env["SWEEPHERD_ATTEMPT"] == "2" and env["WANDB_RUN_ID"] == e["run"]
            assert env["SWEEPHERD_CHECKPOINT_DIR"] == str(
                store.run_dir(e["run"]).resolve() / "checkpoints"
            )
    output = (store.path / "slurm" / f"{job}.out").read_text()
    # the agents were asked to stop by the fan-out, for the time limit
    assert "received the job's time-limit warning (SIGUSR1, as SIGWINCH)" in output

    # `sweepherd status` joins the runs with the job: requeued once, completed, per node.
    capsys.readouterr()
    assert main(["status", str(store.path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [row] = doc["slurm_jobs"]
    assert (row["job_id"], row["state"], row["restarts"]) == (job, "COMPLETED", 1)
    assert {r["job"] for r in doc["runs"]} == {job}
    assert main(["status", str(store.path)]) == 0
    text = capsys.readouterr().out
    assert "slurm jobs" in text and "COMPLETED (requeued 1x)" in text


@pytest.mark.slurm
@pytest.mark.slow
def test_a_run_that_never_fits_in_the_time_limit_is_not_requeued_forever(
    slurm_cluster: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two runs each outlast three allocations; the one that keeps a checkpoint in
    $SWEEPHERD_CHECKPOINT_DIR resumes a fourth time and finishes, the one that starts over
    every time is given up after the third time limit, and the job ends instead of requeueing
    forever."""
    monkeypatch.chdir(tmp_path)
    params = {"x": {"values": [1, 2]}, "checkpoint_x": {"value": 2}}
    params |= {"sleep_first_s": {"value": 300}, "first_attempts": {"value": MAX_TIMEOUTS}}
    config = write_sweep(tmp_path, params)
    scancel_at_end(request, tmp_path / "sweeps")
    done = SlurmLauncher.submit(config, tmp_path / "sweeps", {"slots": 2, "agent_args": AGENT_ARGS})
    assert done.store is not None and done.job_id is not None
    store, job = done.store, done.job_id
    for attempt in range(1, MAX_TIMEOUTS + 1):
        poll(
            lambda a=attempt: sorted(n_executions(tmp_path).values()) == [a, a],
            90,
            f"both runs running attempt {attempt}",
        )
        scancel([job], signal="USR1", batch=True)  # Slurm's warning before the time limit
        poll(
            lambda a=attempt: [e for e in journal_events(store, "end") if e["attempt"] == a][1:],
            30,
            f"both runs stopped at attempt {attempt}",
        )
    [state] = poll(lambda: _ended(job), 120, "the job to end")
    assert (state.state, state.exit_code, state.restarts) == ("COMPLETED", 0, MAX_TIMEOUTS)

    by_x = {r.params["x"]: r for r in runs(store).values()}
    gave_up, kept = by_x[1], by_x[2]
    assert (gave_up.state, gave_up.attempt, gave_up.timeouts) == (
        RunState.PREEMPTED,
        MAX_TIMEOUTS,
        MAX_TIMEOUTS,
    )
    assert gave_up.gave_up and not gave_up.will_run_again
    assert (kept.state, kept.attempt, kept.timeouts) == (RunState.FINISHED, MAX_TIMEOUTS + 1, 0)
    assert n_executions(tmp_path) == Counter({gave_up.id: MAX_TIMEOUTS, kept.id: 4})
    ends = [e for e in journal_events(store, "end") if e["run"] == gave_up.id]
    assert [e.get("timeout") for e in ends] == [True] * MAX_TIMEOUTS

    capsys.readouterr()
    assert main(["status", str(store.path), "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["runs"] if r["id"] == gave_up.id)
    assert (row["timeouts"], row["will_run_again"]) == (MAX_TIMEOUTS, False)
    main(["status", str(store.path)])
    assert f"stopped by the job's time limit {MAX_TIMEOUTS} times" in capsys.readouterr().out


@pytest.mark.slurm
def test_runs_of_a_cancelled_job_are_rerun_by_the_other_job_and_nothing_finished_is_lost(
    slurm_cluster: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_sweep(tmp_path, {"x": {"values": list(range(10))}, "sleep_s": {"value": 2}})
    scancel_at_end(request, tmp_path / "sweeps")
    settings = {"slots": 2, "agent_args": AGENT_ARGS}
    first = SlurmLauncher.submit(config, tmp_path / "sweeps", settings)
    assert first.store is not None and first.job_id is not None
    store, victim = first.store, first.job_id
    second = SlurmLauncher(store).scale(1, {"stagger_s": 0})
    survivor = f"{second.job_id}_0"

    def victim_busy() -> bool:
        now = runs(store).values()
        started = {e["run"] for e in executions(tmp_path)}
        held = [r for r in now if r.state is RunState.RUNNING and r.job == victim]
        return (
            any(r.state is RunState.FINISHED and r.job == victim for r in now)
            and any(r.job == survivor for r in now)
            and len(held) == 2
            and all(r.id in started for r in held)
        )

    poll(victim_busy, 90, "the first job to run 2 trials after finishing some")
    finished_before = {r.id for r in runs(store).values() if r.state is RunState.FINISHED}

    scancel([victim])

    [state] = poll(lambda: _ended(survivor), 120, "the other job to finish the sweep")
    assert (state.state, state.exit_code) == ("COMPLETED", 0)
    [killed] = _ended(victim)
    assert (killed.state, killed.restarts) == ("CANCELLED", 0)  # scancel'd: never requeued

    final = runs(store)
    assert sorted(r.params["x"] for r in final.values()) == list(range(10))
    assert {r.state for r in final.values()} == {RunState.FINISHED}
    assert max(finished_results(store).values()) == 1
    assert n_executions(tmp_path) == Counter({r.id: r.attempt for r in final.values()})
    for run_id in finished_before:  # nothing finished was lost or run again
        assert final[run_id].attempt == 1
    rerun = {r.id for r in final.values() if r.attempt > 1}
    assert rerun  # the cancelled job had runs in flight...
    first_jobs = {
        e["run"]: e["env"]["SLURM_JOB_ID"] for e in executions(tmp_path) if e["attempt"] == 1
    }
    for run_id in rerun:  # ...which the other job's agent ran again
        assert (first_jobs[run_id], final[run_id].attempt, final[run_id].job) == (
            victim,
            2,
            survivor,
        )


@pytest.mark.slurm
def test_a_sweep_submitted_from_inside_an_array_task_names_its_own_job(
    slurm_cluster: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """sbatch passes the submitter's environment on, array variables included: the agents
    must not take the submitting array task for their job (to signal or requeue)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "999")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    config = write_sweep(tmp_path, {"x": {"values": [1]}})
    scancel_at_end(request, tmp_path / "sweeps")
    done = SlurmLauncher.submit(config, tmp_path / "sweeps", {"agent_args": AGENT_ARGS})
    assert done.store is not None and done.job_id is not None
    [state] = poll(lambda: _ended(done.job_id), 60, "the job to finish")
    assert state.state == "COMPLETED"
    [run] = runs(done.store).values()
    assert (run.state, run.job) == (RunState.FINISHED, done.job_id)
