"""``sweepherd cancel``: the sweep is marked cancelled, then its recorded Slurm jobs are
scancelled (on the real cluster); without Slurm only the sweep is cancelled, and it says so."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support.slurm_sweeps import (
    FAST_AGENT,
    executions,
    poll,
    runs,
    scancel_at_end,
    sweeps_under,
    write_sweep,
)
from sweepherd.cli.main import main
from sweepherd.launch import prepare_sweep
from sweepherd.launch.slurm import JobState, squeue_jobs
from sweepherd.runs import RunState


def test_without_slurm_the_sweep_is_cancelled_and_the_jobs_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    store = prepare_sweep(write_sweep(tmp_path, {"x": {"value": 1}}), tmp_path / "sweeps")
    assert main(["cancel", str(store.path)]) == 0  # no jobs recorded: Slurm is not needed
    assert capsys.readouterr() == (
        f"sweep {store.sweep_id} cancelled; its agents stop within seconds\n",
        "",
    )
    with store.transaction() as txn:
        txn.record_job("4242", kind="submit", nodes=1)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert main(["cancel", str(store.path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"sweep {store.sweep_id} was already cancelled\n"
    assert err == (
        "Slurm job(s) 4242 were not cancelled: squeue not found: Slurm's commands are not on "
        "PATH. Run `scancel 4242` where Slurm is.\n"
    )
    assert store.snapshot().cancelled


@pytest.mark.slurm
def test_cancel_stops_the_submitted_job_and_the_array_and_kills_their_runs(
    slurm_cluster: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_sweep(tmp_path, {"x": {"values": list(range(6))}, "sleep_s": {"value": 120}})
    root = tmp_path / "sweeps"
    scancel_at_end(request, root)
    assert main(["submit", str(config), "--dir", str(root), "--agent-args", FAST_AGENT]) == 0
    [store] = sweeps_under(root)
    assert main(["scale", str(store.path), "--nodes", "1", "--stagger", "0"]) == 0
    jobs = re.findall(r"Submitted Slurm job (?:array )?(\d+)", capsys.readouterr().out)
    poll(lambda: len(executions(tmp_path)) == 2, 60, "a trial running in each job")

    assert main(["cancel", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"sweep {store.sweep_id} cancelled; its agents stop within seconds\n"
        f"cancelled Slurm job(s) {', '.join(jobs)}\n"
    )

    def jobs_ended() -> list[JobState]:
        states = squeue_jobs(jobs)
        return states if len(states) == 2 and all(s.is_terminal for s in states) else []

    states = poll(jobs_ended, 60, "both jobs to end")
    assert sorted(s.job_id for s in states) == sorted([jobs[0], f"{jobs[1]}_0"])
    assert {(s.state, s.restarts) for s in states} == {("CANCELLED", 0)}

    def ended() -> list[RunState]:
        states = [r.state for r in runs(store).values()]
        return states if all(s.is_terminal for s in states) else []

    assert poll(ended, 30, "the runs to end") == [RunState.KILLED] * 2  # not preempted
    assert {r.attempt for r in runs(store).values()} == {1}
    assert main(["cancel", str(store.path)]) == 0
    assert (
        capsys.readouterr().out.splitlines()[1]
        == f"Slurm job(s) {', '.join(jobs)} had already ended"
    )
    assert not [s for s in squeue_jobs(jobs) if not s.is_terminal]  # requeued by nobody
