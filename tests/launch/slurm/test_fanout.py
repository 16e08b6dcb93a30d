"""Fan-out over an allocation, on the real cluster: one agent per node, GPUs, signals, requeue.

fake_agent.py stands in for ``sweepherd agent`` (see its docstring); fanout_driver.py is the
batch program calling :func:`fan_out`. Signals are delivered as Slurm delivers its time-limit
warning, to the batch shell, with ``scancel --signal=USR1 --batch`` (a real time limit takes
60-90 s to fire on Slurm 22.05).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from sweepherd.errors import LaunchError
from sweepherd.launch.slurm import (
    AGENT_STOP_SIGNAL,
    AGENT_TIME_LIMIT_SIGNAL,
    REQUEUE_EXIT_STATUS,
    FanOutResult,
    allocation_nodes,
    job_reference,
    sbatch,
    scancel,
)

from .conftest import all_ended, wait_for_jobs

HERE = Path(__file__).parent


def test_requeue_status_is_the_agents() -> None:
    from sweepherd.agent import EXIT_REQUEUE

    assert REQUEUE_EXIT_STATUS == EXIT_REQUEUE == 75


@pytest.mark.parametrize(
    ("statuses", "requeued", "status"),
    [
        ((0, 0), False, 0),
        ((0, 75), False, 75),
        ((75, 75), True, 75),
        ((0, 3, 75), False, 75),
        ((0, 3, 1), False, 3),
        ((0, -9), False, 137),
        ((), False, 0),
    ],
)
def test_one_status_for_the_fan_out(statuses: tuple[int, ...], requeued: bool, status: int) -> None:
    nodes = tuple(f"node{i}" for i in range(len(statuses)))
    assert FanOutResult(nodes, statuses, requeued).exit_status == status


def test_outside_an_allocation_says_so() -> None:
    with pytest.raises(LaunchError, match="needs a Slurm allocation") as info:
        allocation_nodes({})
    assert info.value.hint is not None and "salloc" in info.value.hint


@pytest.mark.parametrize(
    ("env", "reference"),
    [
        ({"SLURM_JOB_ID": "12"}, "12"),
        ({"SLURM_JOB_ID": "16", "SLURM_ARRAY_JOB_ID": "16", "SLURM_ARRAY_TASK_ID": "1"}, "16_1"),
        ({"SLURM_JOB_ID": "17", "SLURM_ARRAY_JOB_ID": "16", "SLURM_ARRAY_TASK_ID": "0"}, "16_0"),
        ({}, None),
    ],
)
def test_job_reference_names_one_array_task(env: dict[str, str], reference: str | None) -> None:
    assert job_reference(env) == reference


def _submit(
    tmp_path: Path,
    mode: str,
    *directives: str,
    gres: str | None = None,
    job_id: str | None = None,
    before: str = "",
) -> str:
    script = tmp_path / "fanout.sbatch"
    argv = [sys.executable, str(HERE / "fanout_driver.py"), str(tmp_path), mode, gres or "-"]
    argv += [job_id] if job_id else []
    script.write_text(
        "\n".join(
            [
                "#!/bin/bash",
                f"#SBATCH --output={tmp_path}/%j.out",
                "#SBATCH --open-mode=append",
                *directives,
                before,
                "exec " + " ".join(argv),
                "",
            ]
        )
    )
    return sbatch(script)


def _events(tmp_path: Path, name: str = "events.jsonl") -> list[dict[str, object]]:
    path = tmp_path / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait_started(tmp_path: Path, n: int, restart: int = 0, timeout_s: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        started = [
            e for e in _events(tmp_path) if e["event"] == "start" and e["restart"] == restart
        ]
        if len(started) >= n:
            return started
        time.sleep(0.1)
    pytest.fail(f"agents did not start: {_events(tmp_path)}; {_output(tmp_path)}")


def _output(tmp_path: Path) -> str:
    return "\n".join(p.read_text() for p in tmp_path.glob("*.out"))


@pytest.mark.slurm
@pytest.mark.slow
def test_agents_per_node_get_usr1_and_the_job_requeues(
    slurm_cluster: object, tmp_path: Path
) -> None:
    job = _submit(
        tmp_path, "preemptible", "#SBATCH --nodes=2", "#SBATCH --gres=gpu:2", "#SBATCH --requeue"
    )
    started = _wait_started(tmp_path, 2)
    nodes = sorted(str(e["node"]) for e in started)
    assert len(set(nodes)) == 2, started  # one agent on each node, told apart by SLURMD_NODENAME
    assert all(e["cvd"] == "0,1" for e in started)  # each step has its node's two GPUs

    scancel([job], signal="USR1", batch=True)  # as Slurm's --signal=B:USR1@grace does
    # Requeued: the job goes back to PENDING, starts again after cred_expire (5 s here) with
    # SLURM_RESTART_COUNT=1, where the agents find nothing left and exit 0.
    [state] = wait_for_jobs(job, lambda s: s[0].restarts == 1 and s[0].is_terminal, timeout_s=45)
    assert (state.state, state.exit_code) == ("COMPLETED", 0)

    events = _events(tmp_path)
    signals = [e for e in events if e["event"] == "signal"]
    assert sorted(str(e["node"]) for e in signals) == nodes
    # not the USR1 itself: the time limit's own stop signal, which the trials ignore too
    assert {e["signal"] for e in signals} == {int(AGENT_TIME_LIMIT_SIGNAL)}
    assert all(e["trial_alive"] for e in signals)  # the trials ignored it; the agents stop them
    assert sorted(str(e["node"]) for e in events if e["event"] == "done") != []
    first, second = _events(tmp_path, "results.jsonl")
    assert (first["statuses"], first["requeued"], first["restart"]) == ([75, 75], True, 0)
    assert (second["statuses"], second["requeued"], second["restart"]) == ([0, 0], False, 1)
    assert sorted(first["nodes"]) == nodes  # type: ignore[arg-type]


@pytest.mark.slurm
def test_no_requeue_job_ends_with_the_requeue_status(slurm_cluster: object, tmp_path: Path) -> None:
    job = _submit(tmp_path, "preemptible", "#SBATCH --nodes=2", "#SBATCH --no-requeue")
    _wait_started(tmp_path, 2)
    scancel([job], signal="USR1", batch=True)
    [state] = wait_for_jobs(job, all_ended)
    assert (state.state, state.exit_code, state.restarts) == ("FAILED", REQUEUE_EXIT_STATUS, 0)
    [result] = _events(tmp_path, "results.jsonl")
    assert (result["statuses"], result["requeued"]) == ([75, 75], False)
    # Slurm says the job may not be requeued: not asked (and refused, with a warning).
    assert f"job {job} may not be requeued (--no-requeue)" in _output(tmp_path)
    assert "the job was not requeued" not in _output(tmp_path)


@pytest.mark.slurm
def test_a_job_warned_as_it_starts_is_not_requeued_forever(
    slurm_cluster: object, tmp_path: Path
) -> None:
    """A time limit no longer than the warning's grace (here a partition's default could be
    what sets it) brings the warning at once; requeueing would loop without end."""
    job = _submit(
        tmp_path,
        "preemptible",
        "#SBATCH --nodes=1",
        "#SBATCH --requeue",
        "#SBATCH --time=1",
        before="export SWEEPHERD_SIGNAL_GRACE_S=120",
    )
    _wait_started(tmp_path, 1)
    scancel([job], signal="USR1", batch=True)
    [state] = wait_for_jobs(job, all_ended)
    assert (state.state, state.exit_code, state.restarts) == ("FAILED", REQUEUE_EXIT_STATUS, 0)
    [result] = _events(tmp_path, "results.jsonl")
    assert (result["statuses"], result["requeued"]) == ([75], False)
    assert "is not longer than the warning signal's grace (120 s)" in _output(tmp_path)


@pytest.mark.slurm
def test_gres_asks_for_fewer_gpus(slurm_cluster: object, tmp_path: Path) -> None:
    job = _submit(
        tmp_path,
        "preemptible",
        "#SBATCH --nodes=1",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --no-requeue",
        gres="gpu:1",
    )
    [started] = _wait_started(tmp_path, 1)
    assert started["cvd"] == "0"
    scancel([job])
    wait_for_jobs(job, all_ended)


@pytest.mark.slurm
def test_a_term_that_is_not_the_time_limit_asks_the_agents_with_the_other_signal(
    slurm_cluster: object, tmp_path: Path
) -> None:
    """SIGTERM (a preemption, a cancel) is not the time limit: the agents get SIGURG, so their
    runs resume as often as they are preempted (only time limits count toward a cap)."""
    job = _submit(tmp_path, "preemptible", "#SBATCH --nodes=1", "#SBATCH --no-requeue")
    _wait_started(tmp_path, 1)
    scancel([job], signal="TERM", batch=True)
    wait_for_jobs(job, all_ended)
    [event] = [e for e in _events(tmp_path) if e["event"] == "signal"]
    assert (event["signal"], event["trial_alive"]) == (int(AGENT_STOP_SIGNAL), True)


@pytest.mark.slurm
def test_a_second_term_aborts_agents_that_do_not_stop(
    slurm_cluster: object, tmp_path: Path
) -> None:
    job = _submit(tmp_path, "stubborn", "#SBATCH --nodes=2", "#SBATCH --no-requeue")
    _wait_started(tmp_path, 2)
    scancel([job], signal="USR1", batch=True)  # passed on as SIGWINCH: ignored by these agents
    deadline = time.monotonic() + 10
    while len([e for e in _events(tmp_path) if e["event"] == "signal"]) < 2:
        assert time.monotonic() < deadline, _events(tmp_path)
        time.sleep(0.1)
    scancel([job], signal="TERM", batch=True)  # second signal: forwarded as SIGTERM, aborts
    wait_for_jobs(job, all_ended, timeout_s=20)  # well before the agents' 60 s sleep ends
    [result] = _events(tmp_path, "results.jsonl")
    statuses = result["statuses"]
    assert isinstance(statuses, list) and all(s not in (0, 75) for s in statuses), result
    assert not any(e["event"] == "timeout" for e in _events(tmp_path))


@pytest.mark.slurm
def test_without_scancel_usr1_goes_through_srun_and_reaches_the_trials(
    slurm_cluster: object, tmp_path: Path
) -> None:
    """The fallback, and the measured reason it is only a fallback: a signal srun passes on
    reaches every process of the step, so the trial (which does not handle SIGUSR1) dies."""
    job = _submit(
        tmp_path, "preemptible", "#SBATCH --nodes=1", "#SBATCH --no-requeue", job_id="999999"
    )
    _wait_started(tmp_path, 1)
    scancel([job], signal="USR1", batch=True)
    wait_for_jobs(job, all_ended)
    [event] = [e for e in _events(tmp_path) if e["event"] == "signal"]
    assert (event["signal"], event["trial_alive"]) == (int(signal.SIGUSR1), False)
    assert "job 999999 is not running" in _output(tmp_path)


@pytest.mark.slurm
def test_fan_out_inside_a_step_that_holds_the_nodes(slurm_cluster: object, tmp_path: Path) -> None:
    """As from a shell of `srun --pty bash`: another step holds every node's CPUs and GPUs."""
    busy = "srun --nodes=2 --ntasks=2 sleep 30 &\nsleep 1"
    job = _submit(
        tmp_path,
        "preemptible",
        "#SBATCH --nodes=2",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --no-requeue",
        before=busy,
    )
    started = _wait_started(tmp_path, 2)
    assert all(e["cvd"] == "0,1" for e in started)
    scancel([job])
    wait_for_jobs(job, all_ended)


def _submit_array(tmp_path: Path, tasks: str, n: int) -> str:
    """A job array (``--array=TASKS``) of one-node fan-outs, task I writing to tmp_path/I."""
    for task in range(n):
        (tmp_path / str(task)).mkdir()
    driver = [sys.executable, str(HERE / "fanout_driver.py")]
    script = tmp_path / "array.sbatch"
    script.write_text(
        "\n".join(
            [
                "#!/bin/bash",
                f"#SBATCH --array={tasks}",
                "#SBATCH --nodes=1",
                "#SBATCH --requeue",
                f"#SBATCH --output={tmp_path}/%A_%a.out",
                "#SBATCH --open-mode=append",
                "exec " + " ".join(driver) + f" {tmp_path}/$SLURM_ARRAY_TASK_ID preemptible",
                "",
            ]
        )
    )
    return sbatch(script)


@pytest.mark.slurm
@pytest.mark.slow
def test_an_array_task_stops_and_requeues_only_itself(
    slurm_cluster: object, tmp_path: Path
) -> None:
    """The last task's SLURM_JOB_ID is the array's id, which would name every task."""
    job = _submit_array(tmp_path, "0-1", 2)
    _wait_started(tmp_path / "0", 1)
    _wait_started(tmp_path / "1", 1)
    scancel([f"{job}_1"], signal="USR1", batch=True)
    states = wait_for_jobs(
        job,
        lambda s: any(t.array_task_id == 1 and t.restarts == 1 and t.is_terminal for t in s),
        timeout_s=45,
    )
    by_task = {s.array_task_id: s for s in states}
    assert (by_task[1].state, by_task[1].exit_code) == ("COMPLETED", 0)
    assert (by_task[0].state, by_task[0].restarts) == ("RUNNING", 0)
    assert not [e for e in _events(tmp_path / "0") if e["event"] == "signal"]
    scancel([job])
    wait_for_jobs(job, all_ended)


@pytest.mark.slurm
@pytest.mark.slow
def test_an_array_task_with_pending_siblings_stops_its_agents_at_once(
    slurm_cluster: object, tmp_path: Path
) -> None:
    """Slurm refuses to signal an array task while its siblings pend ("Job can not be altered
    now"; scancel retries for ~95 s), which left the warning unanswered for a minute: the
    agents are stopped through the task's steps instead, and the task requeues at once."""
    # tasks 1-2 pend while task 0 runs (with one pending task alone, Slurm keeps it in a
    # record of its own and the signal goes through: measured)
    job = _submit_array(tmp_path, "0-2%1", 3)
    try:
        _stop_the_first_task(tmp_path, job)
    finally:
        scancel([job])  # the whole array, pending tasks too
        wait_for_jobs(job, all_ended)


def _stop_the_first_task(tmp_path: Path, job: str) -> None:
    _wait_started(tmp_path / "0", 1)
    # What Slurm's --signal=B:USR1@grace does; `scancel --batch --signal=USR1` of the task
    # would itself hang here, for the same reason (the cluster runs on this machine)
    os.kill(int((tmp_path / "0" / "driver.pid").read_text()), signal.SIGUSR1)
    # scancel's own timeout (60 s) would pass before the requeue if the job were signalled
    wait_for_jobs(
        job,
        lambda s: any(t.array_task_id == 0 and t.restarts == 1 for t in s),
        timeout_s=30,
    )
    signals = [e for e in _events(tmp_path / "0") if e["event"] == "signal"]
    assert [e["signal"] for e in signals] == [int(AGENT_TIME_LIMIT_SIGNAL)]
    assert "passing SIGUSR1" not in _output(tmp_path)
