"""`sweepherd run` through the real command: a sweep here, and every kind of bad input.

Each bad input must give one clear `error:` line (a config error adds one line per problem),
no traceback unless --debug, a non-zero exit status, and lose nothing.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from support.agents import marks, wait_for, write_trial
from support.cli import sweepherd
from sweepherd.cli.run import report_outcome
from sweepherd.config import load_config
from sweepherd.errors import ExitStatus, RunsFailedError
from sweepherd.launch.local import LocalOutcome
from sweepherd.runs import MAX_LOSSES, RunState
from sweepherd.store import create_sweep, list_sweeps, open_sweep


def write_config(folder: Path, **raw: object) -> Path:
    config = {
        "program": "trial.py",
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": [1, 2, 3]}},
        **raw,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def assert_one_error(result: subprocess.CompletedProcess[str], status: ExitStatus) -> str:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_trial(tmp_path)
    return tmp_path


def test_a_sweep_runs_here_and_reports_the_best(project: Path) -> None:
    write_config(project)
    result = sweepherd("run", "sweep.yaml", "--agents", "2", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "Created sweep" in result.stdout
    assert "done: 3 runs" in result.stdout
    (store,) = list_sweeps(project / "sweeps")
    runs = list(store.snapshot().runs.values())
    assert sorted(r.metric for r in runs) == [1.0, 4.0, 9.0]
    # An agent started on the sweep now says why it stops at once.
    late = sweepherd("agent", str(store.path), cwd=project)
    assert late.returncode == 0, late.stderr
    assert "nothing left to run (every point of the grid has been run" in late.stderr
    assert "stopping after 0 run(s) here" in late.stderr
    assert "best" in result.stdout and f"{store.sweep_id}-" in result.stdout


def test_an_invalid_config_lists_every_problem_and_creates_nothing(project: Path) -> None:
    write_config(
        project,
        method="grdi",
        parameters={"lr": {"min": 1.0, "max": 0.1}, "bad name!": {"value": 1}},
    )
    result = sweepherd("run", "sweep.yaml", cwd=project)
    line = assert_one_error(result, ExitStatus.CONFIG)
    assert "3 problems" in line or "problems" in line
    assert "method" in result.stderr
    assert "parameters.lr" in result.stderr
    assert "bad name!" in result.stderr
    assert not (project / "sweeps").exists()


def test_debug_shows_the_traceback(project: Path) -> None:
    write_config(project, method="grdi")
    result = sweepherd("--debug", "run", "sweep.yaml", cwd=project)
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_a_missing_program_is_caught_before_the_sweep_is_created(project: Path) -> None:
    write_config(project, program="nope.py")
    line = assert_one_error(sweepherd("run", "sweep.yaml", cwd=project), ExitStatus.CONFIG)
    assert "'nope.py' was not found" in line
    assert not (project / "sweeps").exists()


def test_a_config_without_program_is_refused_before_anything_is_created(project: Path) -> None:
    path = write_config(project)
    raw = yaml.safe_load(path.read_text())
    del raw["program"]
    path.write_text(yaml.safe_dump(raw))
    result = sweepherd("run", "sweep.yaml", cwd=project)
    line = assert_one_error(result, ExitStatus.CONFIG)
    assert "sweepherd cannot run it" in line
    assert "program: missing" in result.stderr
    assert not (project / "sweeps").exists()


def test_a_missing_config_file(project: Path) -> None:
    line = assert_one_error(sweepherd("run", "absent.yaml", cwd=project), ExitStatus.CONFIG)
    assert "absent.yaml" in line


def test_a_failing_command_fails_the_sweep_and_keeps_its_output(project: Path) -> None:
    write_config(project, parameters={"x": {"values": [1, 2]}, "exit_code": {"value": 3}})
    line = assert_one_error(sweepherd("run", "sweep.yaml", cwd=project), ExitStatus.RUNS)
    assert "2 of 2 runs failed" in line
    assert "exit status 3" in line
    (store,) = list_sweeps(project / "sweeps")
    runs = list(store.snapshot().runs.values())
    assert [r.state for r in runs] == [RunState.FAILED, RunState.FAILED]
    for run in runs:
        assert "failing on purpose" in (store.path / "runs" / run.id / "stderr.log").read_text()


def test_a_metric_never_logged_is_an_error_naming_the_metric(project: Path) -> None:
    write_config(project, parameters={"x": {"values": [1, 2]}, "no_metric": {"value": True}})
    line = assert_one_error(sweepherd("run", "sweep.yaml", cwd=project), ExitStatus.RUNS)
    assert "without logging the metric 'loss'" in line
    (store,) = list_sweeps(project / "sweeps")
    assert all(r.state is RunState.FINISHED for r in store.snapshot().runs.values())


def test_a_run_lost_too_often_fails_the_sweep_with_the_reason(project: Path) -> None:
    store = create_sweep(project / "sweeps", load_config(write_config(project)))
    with store.transaction() as txn:
        runs = [txn.claim_new({"x": x}, agent="a1") for x in (1, 2, 3)]
    with store.transaction() as txn:
        txn.finish(runs[0].id, 1, "finished", exit_code=0, metric=1.0)
        txn.finish(runs[1].id, 1, "finished", exit_code=0)  # no metric (NaN): said as well
        txn.mark_lost(runs[2].id, "its agent a1 was silent for 70 s")
    for attempt in range(2, MAX_LOSSES + 1):
        with store.transaction() as txn:
            txn.claim_again(runs[2].id, agent=f"a{attempt}")
            txn.mark_lost(runs[2].id, f"its agent a{attempt} was silent for 70 s")
    console = Console(file=io.StringIO())
    with pytest.raises(RunsFailedError, match=f"1 of 3 runs failed .*lost {MAX_LOSSES} times") as e:
        report_outcome(console, store, LocalOutcome(exit_codes=[0]))
    assert "; 1 finished without a value of 'loss'" in str(e.value)
    assert f"failed: lost {MAX_LOSSES} times" in console.file.getvalue()  # type: ignore[attr-defined]


def test_a_sweep_that_does_not_exist(project: Path) -> None:
    for command in ("status", "agent", "best", "cancel"):
        line = assert_one_error(sweepherd(command, "nosuchsweep", cwd=project), ExitStatus.STORE)
        assert "nosuchsweep" in line


@pytest.fixture
def read_only_root(tmp_path: Path):
    root = tmp_path / "ro"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(root)], check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
    yield root
    subprocess.run(["umount", str(root)], check=True)


def test_an_unwritable_sweep_folder(project: Path, read_only_root: Path) -> None:
    write_config(project)
    result = sweepherd("run", "sweep.yaml", "--dir", str(read_only_root), cwd=project)
    line = assert_one_error(result, ExitStatus.STORE)
    assert str(read_only_root) in line
    assert list(read_only_root.iterdir()) == []


def _start_run(project: Path, *args: str, under: tuple[str, ...] = ()) -> subprocess.Popen[str]:
    """``sweepherd run sweep.yaml ARGS`` (under a command such as ``nohup``) started in
    ``project``, to be signalled while it runs."""
    return subprocess.Popen(
        [*under, sys.executable, "-m", "sweepherd", "run", "sweep.yaml", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_ctrl_c_stops_gracefully_and_the_runs_resume(project: Path, sig: signal.Signals) -> None:
    """And so do a `kill`, `timeout` or a service manager (SIGTERM) and a closed terminal
    (SIGHUP): the agents run in sessions of their own and would go on with the sweep unseen."""
    write_config(project, parameters={"x": {"values": [1, 2]}, "sleep_first_s": {"value": 60}})
    proc = _start_run(project, "--agents", "2")
    wait_for(lambda: len(marks(project)) == 2, what="both trials started")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitStatus.INTERRUPTED, err
    assert "resume with: sweepherd agent" in out
    (store,) = list_sweeps(project / "sweeps")
    assert [r.state for r in store.snapshot().runs.values()] == [RunState.PREEMPTED] * 2
    result = sweepherd("agent", str(store.path), "-q", cwd=project)
    assert result.returncode == 0, result.stderr
    runs = list(open_sweep(store.path, project).snapshot().runs.values())
    assert [(r.state, r.attempt) for r in runs] == [(RunState.FINISHED, 2)] * 2


def test_under_nohup_a_closed_terminal_does_not_stop_the_sweep(project: Path) -> None:
    """SIGHUP ignored on purpose (`nohup sweepherd run ...`) stays ignored; a later SIGTERM
    still stops the agents gracefully."""
    write_config(project, parameters={"x": {"values": [1]}, "sleep_first_s": {"value": 60}})
    proc = _start_run(project, under=("nohup",))
    wait_for(lambda: len(marks(project)) == 1, what="the trial started")
    proc.send_signal(signal.SIGHUP)
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=2)  # still running
    (store,) = list_sweeps(project / "sweeps")
    assert [r.state for r in store.snapshot().runs.values()] == [RunState.RUNNING]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitStatus.INTERRUPTED, err
    assert [r.state for r in store.snapshot().runs.values()] == [RunState.PREEMPTED]
