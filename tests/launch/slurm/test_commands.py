"""Slurm's commands: parsing (outputs captured from the real Slurm 22.05 cluster of
scripts/slurm-local.sh, in captured/) and the commands themselves on that real cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from sweepherd.errors import SlurmError
from sweepherd.launch.slurm import (
    JobState,
    SbatchOptions,
    decode_wait_status,
    job_requeueable,
    parse_sbatch_parsable,
    parse_scancel_not_signalled,
    parse_squeue,
    render_scale,
    render_submit,
    sbatch,
    scancel,
    scontrol_requeue,
    scontrol_show_hostnames,
    slurm_error,
    squeue_jobs,
    srun_argv,
)

from .conftest import all_ended, wait_for_jobs

CAPTURED = Path(__file__).parent / "captured"


def captured(name: str) -> str:
    return (CAPTURED / name).read_text()


# --- parsing (pure) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdout", "job_id"), [("123\n", "123"), ("123;cluster\n", "123"), ("\n77\n", "77")]
)
def test_sbatch_parsable(stdout: str, job_id: str) -> None:
    assert parse_sbatch_parsable(stdout) == job_id


@pytest.mark.parametrize("stdout", ["", "Submitted batch job 5\n", "x;y"])
def test_sbatch_without_a_job_id_is_an_error(stdout: str) -> None:
    with pytest.raises(SlurmError, match="sbatch printed no job id"):
        parse_sbatch_parsable(stdout)


@pytest.mark.parametrize(
    ("raw", "decoded"), [(0, (0, None)), (768, (3, None)), (19200, (75, None)), (9, (None, 9))]
)
def test_raw_wait_status(raw: int, decoded: tuple[int | None, int | None]) -> None:
    assert decode_wait_status(raw) == decoded


def test_squeue_rows_of_every_kind() -> None:
    states = {s.job_id: s for s in parse_squeue(captured("squeue_mixed.txt"))}
    assert set(states) == {"1", "2", "3", "4", "5", "6_[2-5%2]", "6_0", "6_1", "7"}
    assert states["1"] == JobState(
        job_id="1",
        raw_job_id="1",
        array_job_id=None,
        array_task_id=None,
        pending_tasks=None,
        state="COMPLETED",
        reason=None,
        nodes="node1",
        exit_code=0,
        signal=None,
        restarts=0,
    )
    assert (states["2"].state, states["2"].exit_code, states["2"].reason) == (
        "FAILED",
        3,
        "NonZeroExitCode",
    )
    assert (states["3"].exit_code, states["3"].signal) == (None, 9)  # kill -9 $$
    assert states["4"].state == "CANCELLED" and states["4"].nodes is None
    assert states["5"].nodes == "node[1-2]" and not states["5"].is_terminal
    task = states["6_1"]
    assert (task.raw_job_id, task.array_job_id, task.array_task_id) == ("9", "6", 1)
    pending = states["6_[2-5%2]"]
    assert (pending.array_task_id, pending.pending_tasks, pending.reason) == (
        None,
        "2-5%2",
        "JobArrayTaskLimit",
    )
    assert states["7"].reason == "PartitionNodeLimit"


def test_squeue_output_of_another_shape_is_an_error() -> None:
    with pytest.raises(SlurmError, match="cannot read squeue's output line"):
        parse_squeue("1|COMPLETED|\n")


def test_scancel_reports_ended_and_unknown_ids() -> None:
    assert parse_scancel_not_signalled(captured("scancel_signal_ended.stderr")) == ["1", "99999"]


@pytest.mark.parametrize(
    ("name", "message", "hint"),
    [
        (
            "sbatch_invalid_partition.stderr",
            "sbatch failed (exit 1): invalid partition specified: nosuch; Batch job submission "
            "failed: Invalid partition name specified.",
            "sinfo -s",
        ),
        (
            "sbatch_invalid_time.stderr",
            "sbatch failed (exit 1): Invalid --time specification.",
            "HOURS:MINUTES:SECONDS",
        ),
        (
            "sbatch_too_many_gpus.stderr",
            "sbatch failed (exit 1): Batch job submission failed: Requested node configuration "
            "is not available.",
            "no more CPUs, GPUs or memory",
        ),
        (
            "sbatch_unknown_option.stderr",
            "sbatch failed (exit 1): unrecognized option '--bogus'.",
            "--sbatch-arg",
        ),
        (
            "sbatch_no_config.stderr",
            "sbatch failed (exit 1): Could not establish a configuration source.",
            "SLURM_CONF",
        ),
        (
            "scontrol_requeue_disabled.stderr",
            "sbatch failed (exit 1): Requested operation is presently disabled for job 11.",
            "`sweepherd scale SWEEP --nodes N` starts some",
        ),
        (
            "sbatch_array_too_large.stderr",
            "sbatch failed (exit 1): Batch job submission failed: Invalid job array specification.",
            "MaxArraySize",
        ),
        (
            "scontrol_requeue_salloc.stderr",
            "sbatch failed (exit 1): Only batch jobs are accepted or processed for job 12.",
            "Only batch jobs can be requeued",
        ),
        (
            "squeue_unknown_id.stderr",
            "sbatch failed (exit 1): slurm_load_jobs error: Invalid job id specified.",
            "left Slurm's memory",
        ),
    ],
)
def test_errors_carry_slurms_words_and_what_to_do(name: str, message: str, hint: str) -> None:
    error = slurm_error("sbatch", 1, captured(name))
    assert error.message == message
    assert error.hint is not None and hint in error.hint
    assert "\n" not in str(error)


def test_srun_argv_runs_one_task_on_the_node() -> None:
    assert srun_argv(["python", "-m", "x"], node="node3") == [
        "srun",
        "--nodes=1",
        "--ntasks=1",
        "--nodelist=node3",
        "--overlap",
        "--kill-on-bad-exit=0",
        "python",
        "-m",
        "x",
    ]
    assert srun_argv(["a"], node="n1", gres="gpu:1", extra_args=["--mem=1G"])[-3:] == [
        "--gres=gpu:1",
        "--mem=1G",
        "a",
    ]


def test_missing_commands_say_where_to_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SlurmError, match="sbatch not found: Slurm's commands are not on PATH") as e:
        sbatch(tmp_path / "x.sbatch")
    assert e.value.hint is not None and "module load slurm" in e.value.hint


def test_a_missing_slurm_conf_fails_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "nope.conf"))
    # Our own check, before Slurm would retry reading the file for 60 s:
    with pytest.raises(SlurmError, match=r"SLURM_CONF is set to .*nope.conf, which is not a file"):
        squeue_jobs(["1"])


# --- the real cluster -------------------------------------------------------------------------


def _script(tmp_path: Path, body: str, *directives: str) -> Path:
    path = tmp_path / "job.sbatch"
    lines = ["#!/bin/bash", f"#SBATCH --output={tmp_path}/%j.out", *directives, body, ""]
    path.write_text("\n".join(lines))
    return path


@pytest.mark.slurm
def test_sbatch_then_squeue_sees_exit_codes(slurm_cluster: object, tmp_path: Path) -> None:
    ok = sbatch(_script(tmp_path, "true"))
    failed = sbatch(_script(tmp_path, "exit 3"))
    assert ok.isdigit() and failed.isdigit() and ok != failed
    states = wait_for_jobs(f"{ok}", all_ended) + wait_for_jobs(failed, all_ended)
    by_id = {s.job_id: s for s in states}
    assert (by_id[ok].state, by_id[ok].exit_code) == ("COMPLETED", 0)
    assert (by_id[failed].state, by_id[failed].exit_code) == ("FAILED", 3)
    assert by_id[failed].reason == "NonZeroExitCode"


@pytest.mark.slurm
def test_squeue_of_unknown_jobs_is_empty(slurm_cluster: object) -> None:
    assert squeue_jobs(["999999"]) == []
    assert squeue_jobs([]) == []


@pytest.mark.slurm
def test_scancel_stops_a_running_job_and_ignores_ended_ones(
    slurm_cluster: object, tmp_path: Path
) -> None:
    job = sbatch(_script(tmp_path, "sleep 120 & wait"))
    wait_for_jobs(job, lambda s: s[0].state == "RUNNING")
    assert scancel([job]) == []
    [state] = wait_for_jobs(job, all_ended)
    assert state.state == "CANCELLED"
    assert scancel([job]) == []  # cancelling an ended job is not an error
    assert scancel([job, "999999"], signal="USR1", batch=True) == [job, "999999"]


@pytest.mark.slurm
def test_scancel_signal_reaches_the_batch_shell(slurm_cluster: object, tmp_path: Path) -> None:
    body = "trap 'echo got-usr1; exit 7' USR1\nsleep 60 & wait"
    job = sbatch(_script(tmp_path, body))
    wait_for_jobs(job, lambda s: s[0].state == "RUNNING")
    time.sleep(0.3)  # let bash install its trap
    scancel([job], signal="USR1", batch=True)
    [state] = wait_for_jobs(job, all_ended)
    assert (state.state, state.exit_code) == ("FAILED", 7)
    assert "got-usr1" in (tmp_path / f"{job}.out").read_text()


@pytest.mark.slurm
def test_unknown_partition_is_one_clear_error(slurm_cluster: object, tmp_path: Path) -> None:
    with pytest.raises(SlurmError) as info:
        sbatch(_script(tmp_path, "true"), ["--partition=nosuch"])
    assert str(info.value).startswith("sbatch failed (exit 1): invalid partition specified: nosuch")
    assert "sinfo -s" in str(info.value)


@pytest.mark.slurm
def test_bad_time_limit_is_one_clear_error(slurm_cluster: object, tmp_path: Path) -> None:
    with pytest.raises(SlurmError, match=r"Invalid --time specification\. Give --time as"):
        sbatch(_script(tmp_path, "true"), ["--time=4h"])


@pytest.mark.slurm
def test_requeue_refused_for_a_no_requeue_job(slurm_cluster: object, tmp_path: Path) -> None:
    job = sbatch(_script(tmp_path, "sleep 60 & wait", "#SBATCH --no-requeue"))
    wait_for_jobs(job, lambda s: s[0].state == "RUNNING")
    try:
        assert job_requeueable(job) is False  # what the fan-out asks before requeueing
        with pytest.raises(SlurmError, match=r"presently disabled.*--no-requeue"):
            scontrol_requeue(job)
    finally:
        scancel([job])
    other = sbatch(_script(tmp_path, "sleep 60 & wait", "#SBATCH --requeue"))
    try:
        assert job_requeueable(other) is True
    finally:
        scancel([other])
    assert job_requeueable("999999") is None  # unknown to Slurm


@pytest.mark.slurm
def test_show_hostnames_expands_node_lists(slurm_cluster: object) -> None:
    assert scontrol_show_hostnames("node[1-3],gpu-a[07-08]") == [
        "node1",
        "node2",
        "node3",
        "gpu-a07",
        "gpu-a08",
    ]


@pytest.mark.slurm
def test_rendered_submit_means_what_it_says(
    slurm_cluster: object, tmp_path: Path, fake_python: Path
) -> None:
    """Directives, quoting, setup lines, exports and the agent's argv as Slurm and bash see them."""
    nasty = 'it\'s a "test" $HOME; echo pwned # not a comment \\ `x`'
    sweep_dir = tmp_path / "sweep dir 100%"
    (sweep_dir / "slurm").mkdir(parents=True)
    record = tmp_path / "record.jsonl"
    options = SbatchOptions(
        sweep_dir=sweep_dir,
        nodes=2,
        gpus_per_node=1,
        trials_per_gpu=3,
        time="10:00",
        mem="100M",
        cpus_per_task=1,
        job_name=nasty,
        setup=("export FROM_SETUP=yes",),
        env={"NOTE": nasty, "RECORD_FILE": str(record)},
        sbatch_args=(f"--comment={nasty}",),
        signal_grace_s=30,
        python=str(fake_python),
        agent_args=(nasty,),
    )
    script = tmp_path / "submit.sbatch"
    script.write_text(render_submit(options))
    job = sbatch(script)
    [state] = wait_for_jobs(job, all_ended)
    assert (state.state, state.exit_code) == ("COMPLETED", 0)
    assert state.nodes is not None and len(scontrol_show_hostnames(state.nodes)) == 2
    [line] = record.read_text().splitlines()
    seen = json.loads(line)
    assert seen["argv"] == [
        "-m",
        "sweepherd",
        "agent",
        str(sweep_dir),
        "--all-nodes",
        "--gpus",
        "auto",
        "--trials-per-gpu",
        "3",
        nasty,
    ]
    env = seen["env"]
    assert (env["NOTE"], env["FROM_SETUP"], env["SWEEPHERD_SIGNAL_GRACE_S"]) == (nasty, "yes", "30")
    assert env["CUDA_VISIBLE_DEVICES"] == "0"  # the batch step sees its node's one GPU
    # The directives as sbatch parsed them:
    name, comment, _ = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job, "-O", "Name:\x1f,Comment:\x1f"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\x1f")
    assert (name, comment) == (nasty, nasty)
    shown = _show_job(job)
    assert shown["TimeLimit"] == "00:10:00"
    assert shown["Requeue"] == "1"
    assert shown["NumNodes"] == "2"
    # %% in the output pattern is a literal %: the output went into the sweep directory
    # (scontrol shows the pattern with %% unexpanded).
    assert [p.name for p in (sweep_dir / "slurm").iterdir()] == [f"{job}.out"]


def _show_job(job: str) -> dict[str, str]:
    """``scontrol show job -o`` as a dict; values may hold spaces, so split on known keys."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True
    ).stdout
    # key=value pairs, where a key is a word starting with a capital letter after a space.
    pairs = re.split(r" (?=[A-Z][A-Za-z:/]*=)", out.strip())
    return dict(p.split("=", 1) for p in pairs if "=" in p)


@pytest.mark.slurm
def test_rendered_scale_runs_one_agent_per_element(
    slurm_cluster: object, tmp_path: Path, fake_python: Path
) -> None:
    sweep_dir = tmp_path / "sweep"
    (sweep_dir / "slurm").mkdir(parents=True)
    record = tmp_path / "record.jsonl"
    options = SbatchOptions(
        sweep_dir=sweep_dir,
        slots=2,
        env={"RECORD_FILE": str(record)},
        array_max_parallel=2,
        stagger_s=1,
        python=str(fake_python),
    )
    script = tmp_path / "scale.sbatch"
    script.write_text(render_scale(options, 3))
    job = sbatch(script)
    states = wait_for_jobs(job, lambda s: len(s) == 3 and all_ended(s), timeout_s=60)
    assert sorted(s.array_task_id for s in states if s.array_task_id is not None) == [0, 1, 2]
    assert {(s.state, s.array_job_id) for s in states} == {("COMPLETED", job)}
    seen = [json.loads(line) for line in record.read_text().splitlines()]
    assert sorted(r["env"]["SLURM_ARRAY_TASK_ID"] for r in seen) == ["0", "1", "2"]
    assert {tuple(r["argv"]) for r in seen} == {
        ("-m", "sweepherd", "agent", str(sweep_dir), "--all-nodes", "--slots", "2")
    }
    outputs = sorted(p.name for p in (sweep_dir / "slurm").iterdir())
    assert outputs == [f"{job}_0.out", f"{job}_1.out", f"{job}_2.out"]
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)  # type: ignore[attr-defined]
