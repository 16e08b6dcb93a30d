"""``sweepherd scale`` through the real CLI boundary: the array script built from the options
recorded at submit, sweeps it refuses, and an array of agents joining a running sweep on the
real Slurm cluster."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from support.golden import check_golden
from support.slurm_sweeps import (
    FAST_AGENT,
    executions,
    finished_results,
    journal_events,
    poll,
    runs,
    scancel_at_end,
    sweeps_under,
    write_sweep,
)
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus
from sweepherd.launch import prepare_sweep
from sweepherd.launch.slurm import SCALE, SUBMIT, SbatchOptions, squeue_jobs, sweep_jobs
from sweepherd.runs import MAX_LOSSES, RunState
from sweepherd.store import SweepStore

GOLDEN = Path(__file__).parent / "golden"
NASTY_NAME = 'it\'s "q" $HOME; echo pwned # %j'


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SweepStore:
    monkeypatch.chdir(tmp_path)
    config = write_sweep(tmp_path, {"x": {"values": [1, 2]}})
    return prepare_sweep(config, tmp_path / "sweeps")


def record_submit(store: SweepStore, job_id: str, **options: object) -> None:
    """Record a submit job as `sweepherd submit` does (the journal format scale reads)."""
    recorded = SbatchOptions(sweep_dir=store.path.resolve(), **options)  # type: ignore[arg-type]
    with store.transaction() as txn:
        txn.record_job(job_id, kind=SUBMIT, nodes=recorded.nodes, options=recorded.to_record())


def test_dry_run_reuses_the_submit_options_with_overrides(
    store: SweepStore, capsys: pytest.CaptureFixture[str]
) -> None:
    record_submit(
        store,
        "41",
        nodes=4,
        gpus_per_node=2,
        trials_per_gpu=3,
        partition="gpu",
        time="4:00:00",
        account="proj x",
        setup=("source '/my venv/bin/activate'",),
        sbatch_args=("--constraint=a100",),
        signal_grace_s=300,
        python="/opt/my env/bin/python",
        agent_args=("--lost-after", "120"),
    )
    argv = ["scale", str(store.path), "--nodes", "5", "--time", "1:00:00", "--stagger", "5"]
    assert main([*argv, "--max-parallel", "2", "--job-name", NASTY_NAME, "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "dry run: nothing was submitted" in err
    sweep_dir = str(store.path.resolve())
    text = out.replace(sweep_dir.replace("%", "%%"), "<SWEEP_DIR>")
    check_golden(GOLDEN / "scale_dry_run_overrides.sbatch", text.replace(sweep_dir, "<SWEEP_DIR>"))
    assert sorted(p.name for p in (store.path / "slurm").iterdir()) == []  # nothing written
    assert [e["job"] for e in journal_events(store, "job")] == ["41"]  # nothing recorded


def test_the_submit_jobs_node_list_is_not_repeated_by_one_node_elements(
    store: SweepStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """sbatch refuses a one-node element given the submit job's two-node list."""
    args = ("--nodelist=node3,node4", "--constraint=a100", "--ntasks=2")
    record_submit(store, "41", nodes=2, sbatch_args=args)
    assert main(["scale", str(store.path), "--nodes", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --constraint=a100\n" in out
    assert "--nodelist" not in out and "--ntasks=2" not in out
    given = ["scale", str(store.path), "-N", "1", "--sbatch-arg=--nodelist=node2", "--dry-run"]
    assert main(given) == 0  # given to scale itself, it is used
    out = capsys.readouterr().out
    assert "#SBATCH --nodelist=node2\n" in out and "--constraint" not in out


def test_a_sweep_never_submitted_scales_with_the_defaults(
    store: SweepStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scale", str(store.path), "--nodes", "1", "--slots", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-0\n" in out and "#SBATCH --requeue\n" in out
    assert out.rstrip().endswith(f"{store.path.resolve()} --all-nodes --slots 2")


def test_a_cancelled_sweep_is_refused_in_one_line(
    store: SweepStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with store.transaction() as txn:
        txn.cancel("enough")
    for dry_run in ([], ["--dry-run"]):
        assert main(["scale", str(store.path), "-N", "2", *dry_run]) == ExitStatus.LAUNCH
        assert capsys.readouterr().err == (
            f"error: sweep {store.sweep_id} was cancelled: more agents would have nothing to "
            "do. Start a new sweep with `sweepherd submit SWEEP_YAML` instead.\n"
        )


def test_a_wandb_backend_sweep_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_sweep(tmp_path, {"x": {"values": [1, 2]}})
    store = prepare_sweep(config, tmp_path / "sweeps", backend="wandb")
    assert main(["scale", str(store.path), "-N", "2", "--dry-run"]) == ExitStatus.LAUNCH
    err = capsys.readouterr().err
    assert err.startswith(f"error: sweep {store.sweep_id} is run by W&B's controller")
    assert err.count("\n") == 1


def test_a_finished_sweep_is_refused_but_one_with_runs_to_resume_is_not(
    store: SweepStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with store.transaction() as txn:
        first = txn.claim_new({"x": 1}, agent="a")
        second = txn.claim_new({"x": 2}, agent="a")
        txn.finish(first.id, 1, "finished", exit_code=0, metric=1.0)
        txn.finish(second.id, 1, "preempted")
    assert main(["scale", str(store.path), "-N", "1", "--dry-run"]) == 0  # x=2 must resume
    capsys.readouterr()
    with store.transaction() as txn:
        resumed = txn.claim_again(second.id, agent="b")
        txn.finish(resumed.id, resumed.attempt, "finished", exit_code=0, metric=4.0)
    assert main(["scale", str(store.path), "-N", "1", "--dry-run"]) == ExitStatus.LAUNCH
    assert capsys.readouterr().err.startswith(
        f"error: sweep {store.sweep_id} is finished (all 2 grid points have run): "
    )


def test_a_sweep_whose_last_runs_were_given_up_is_finished(
    store: SweepStore, capsys: pytest.CaptureFixture[str]
) -> None:
    # x=2 was lost MAX_LOSSES times: no agent will start it again, so more agents would only
    # start, find nothing and end (the views count it as settled, "given up", too).
    with store.transaction() as txn:
        first = txn.claim_new({"x": 1}, agent="a")
        txn.finish(first.id, 1, "finished", exit_code=0, metric=1.0)
        lost = txn.claim_new({"x": 2}, agent="a")
    for attempt in range(1, MAX_LOSSES + 1):
        with store.transaction() as txn:
            if attempt > 1:
                txn.claim_again(lost.id, agent=f"a{attempt}")
            assert txn.mark_lost(lost.id, "agent silent")
        if attempt < MAX_LOSSES:
            assert main(["scale", str(store.path), "-N", "1", "--dry-run"]) == 0
            capsys.readouterr()
    assert store.snapshot().runs[lost.id].gave_up
    assert main(["scale", str(store.path), "-N", "1", "--dry-run"]) == ExitStatus.LAUNCH
    assert capsys.readouterr().err.startswith(
        f"error: sweep {store.sweep_id} is finished (all 2 grid points have run): "
    )


def test_nodes_must_be_positive(store: SweepStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scale", str(store.path), "--nodes", "0"]) == ExitStatus.USAGE
    assert "--nodes" in capsys.readouterr().err


@pytest.mark.slurm
def test_an_array_of_agents_joins_a_running_sweep_and_takes_runs(
    slurm_cluster: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_sweep(tmp_path, {"x": {"values": list(range(8))}, "sleep_s": {"value": 2}})
    root = tmp_path / "sweeps"
    scancel_at_end(request, root)
    argv = ["submit", str(config), "--dir", str(root), "--slots", "1", "--time", "10"]
    assert main([*argv, "--agent-args", FAST_AGENT]) == 0
    [store] = sweeps_under(root)
    [submit_job] = re.findall(r"Submitted Slurm job (\d+)", capsys.readouterr().out)
    poll(lambda: runs(store), 60, "the submitted agent's first run")

    assert (
        main(["scale", store.sweep_id, "--dir", str(root), "--nodes", "2", "--stagger", "1"]) == 0
    )
    out = capsys.readouterr().out
    [array] = re.findall(
        r"^Submitted Slurm job array (\d+) to sweep \S+ \(2 one-node elements", out, re.M
    )
    record = journal_events(store, "job")[-1]
    assert (record["job"], record["kind"], record["nodes"], record["array"]) == (
        array,
        SCALE,
        2,
        "0-1",
    )
    assert record["options"]["time"] == "10" and record["options"]["slots"] == 1  # reused
    assert Path(record["script"]) == store.path.resolve() / "slurm" / "scale-1.sbatch"

    def all_ended() -> list[object]:
        states = squeue_jobs([submit_job, array])
        return states if len(states) == 3 and all(s.is_terminal for s in states) else []

    poll(all_ended, 180, "the submitted job and both array tasks to end")
    done = runs(store)
    assert sorted(r.params["x"] for r in done.values()) == list(range(8))
    assert {r.state for r in done.values()} == {RunState.FINISHED}
    assert max(Counter(e["run"] for e in executions(tmp_path)).values()) == 1
    assert max(finished_results(store).values()) == 1
    by_job = Counter(r.job for r in done.values())
    assert set(by_job) == {submit_job, f"{array}_0", f"{array}_1"}  # every agent took runs
    for e in executions(tmp_path):
        job = done[e["run"]].job
        if job != submit_job:
            assert (e["env"]["SLURM_ARRAY_JOB_ID"], e["env"]["SLURM_ARRAY_TASK_ID"]) == (
                array,
                job.split("_")[1],
            )

    jobs = {j.job: j for j in sweep_jobs(store)}
    assert set(jobs) == {submit_job, f"{array}_0", f"{array}_1"}  # joinable by Run.job
    assert {(j.state, j.exit_code) for j in jobs.values()} == {("COMPLETED", 0)}
    assert (jobs[submit_job].kind, jobs[f"{array}_1"].kind) == (SUBMIT, SCALE)
    assert jobs[f"{array}_1"].recorded_as == array
    outputs = {p.name for p in (store.path / "slurm").iterdir()}
    assert {f"{array}_0.out", f"{array}_1.out", f"{submit_job}.out"} <= outputs


@pytest.mark.parametrize(
    ("submitted", "flags", "expected", "absent"),
    [
        ({"slots": 4}, ["--gpus-per-node", "2"], ["--gres=gpu:2", "--gpus auto"], "--slots"),
        ({"gpus_per_node": 2}, ["--slots", "3"], ["--slots 3", "--cpus-per-task=3"], "--gres"),
    ],
)
def test_scaling_onto_other_nodes_replaces_the_recorded_slots_or_gpus(
    store: SweepStore,
    capsys: pytest.CaptureFixture[str],
    submitted: dict[str, int],
    flags: list[str],
    expected: list[str],
    absent: str,
) -> None:
    """A CPU sweep given GPU nodes (or the other way round): the recorded kind of slot does not
    apply to the new nodes, so it is not kept beside the new one (which was refused)."""
    record_submit(store, "41", nodes=2, **submitted)
    assert main(["scale", str(store.path), "--nodes", "2", *flags, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert all(e in out for e in expected), out
    assert absent not in out
