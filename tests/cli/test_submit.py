"""``sweepherd submit`` through the real CLI boundary: the script it writes, what it refuses with
one clear line, and a 2-node sweep run on the real Slurm cluster of scripts/slurm-local.sh.

Golden files: regenerate after an intended change with
``SWEEPHERD_REGEN_GOLDEN=1 .venv/bin/pytest tests/cli/test_submit.py tests/cli/test_scale.py``.
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import socket
import subprocess
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
from sweepherd.launch.slurm import SUBMIT, scontrol_show_hostnames, squeue_jobs
from sweepherd.launch.slurm import _launcher as slurm_launcher
from sweepherd.runs import RunState

GOLDEN = Path(__file__).parent / "golden"
#: Values that must survive quoting in the script.
NASTY_NAME = 'it\'s "q" $HOME; echo pwned # %j'
SETUP = ("module load cuda/12.1", "source '/my venv/bin/activate'")


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.strip()]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_sweep(tmp_path, {"x": {"values": [1, 2]}})


# --- without Slurm ----------------------------------------------------------------------------


def test_dry_run_prints_the_script_of_every_flag_and_creates_nothing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "sweeps $x 100%"
    status = main(
        [
            "submit",
            str(config),
            "--dir",
            str(root),
            "--nodes=3",
            "--gpus-per-node=2",
            "--trials-per-gpu=2",
            "--cpus-per-task=8",
            "--mem=32G",
            "--partition=gpu",
            "--time=2:00:00",
            "--qos=high",
            "--account=proj x",
            f"--job-name={NASTY_NAME}",
            f"--setup={SETUP[0]}",
            f"--setup={SETUP[1]}",
            "--sbatch-arg=--constraint=a100|h100",
            "--sbatch-arg",
            "--exclusive",
            "--signal-grace=300",
            "--no-requeue",
            "--agent-args=--lost-after 120",
            "--agent-args=--wandb-mode online",
            "--python=/opt/my env/bin/python",
            "--dry-run",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0
    assert not root.exists()  # nothing created: not even the sweeps folder
    assert "dry run: nothing was created or submitted" in err
    sweep_dir = re.search(r"^# sweepherd: agents of the sweep in (.+)$", out, re.M)
    assert sweep_dir is not None and sweep_dir.group(1).startswith(str(root.resolve()) + "/")
    placeholder = out.replace(sweep_dir.group(1).replace("%", "%%"), "<SWEEP_DIR>")
    check_golden(
        GOLDEN / "submit_dry_run_every_flag.sbatch",
        placeholder.replace(sweep_dir.group(1), "<SWEEP_DIR>"),
    )
    exec_line = next(ln for ln in out.splitlines() if ln.startswith("exec "))
    assert shlex.split(exec_line)[1:] == [
        "/opt/my env/bin/python",
        "-m",
        "sweepherd",
        "agent",
        sweep_dir.group(1),
        "--all-nodes",
        "--gpus",
        "auto",
        "--trials-per-gpu",
        "2",
        "--lost-after",
        "120",
        "--wandb-mode",
        "online",
    ]
    assert subprocess.run(["bash", "-n"], input=out, text=True, check=False).returncode == 0


def test_an_output_pattern_is_made_absolute_as_the_submit_directory_sees_it(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """sbatch takes a relative --output from the directory it runs in; a later scale may run
    elsewhere. `~` is the user's home, as a shell would have it."""
    root = tmp_path / "sweeps"
    for given, meant in [
        ("%x-%j.out", f"{tmp_path}/%x-%j.out"),
        ("~/logs/%j.out", f"{Path.home()}/logs/%j.out"),
    ]:
        assert (
            main(["submit", str(config), "--dir", str(root), "--output", given, "--dry-run"]) == 0
        )
        assert f"#SBATCH --output={meant}\n" in capsys.readouterr().out.replace('"', "")


def test_dry_run_still_checks_the_config_and_the_program(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "sweep.yaml"
    config.write_text("program: missing.py\nmethod: grid\nparameters: {x: {values: [1]}}\n")
    root = tmp_path / "sweeps"
    assert main(["submit", str(config), "--dir", str(root), "--dry-run"]) == ExitStatus.CONFIG
    assert "program 'missing.py' was not found" in capsys.readouterr().err
    config.write_text("program: sweep.yaml\nmethod: grid\nparameters: {x: {min: 5, max: 1}}\n")
    assert main(["submit", str(config), "--dir", str(root), "--dry-run"]) == ExitStatus.CONFIG
    assert "parameters.x" in capsys.readouterr().err
    assert not root.exists()


def test_an_invalid_option_is_one_line_naming_the_flag(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "sweeps"
    for dry_run in ([], ["--dry-run"]):
        status = main(["submit", str(config), "--dir", str(root), "--time", "4h", *dry_run])
        err = capsys.readouterr().err
        assert status == ExitStatus.CONFIG
        assert error_lines(err) == [
            "error: invalid option --time: '4h' is not a Slurm time limit: use MINUTES, "
            "MINUTES:SECONDS, HOURS:MINUTES:SECONDS, DAYS-HOURS, DAYS-HOURS:MINUTES, "
            "DAYS-HOURS:MINUTES:SECONDS, or UNLIMITED"
        ]
    status = main(
        ["submit", str(config), "--dir", str(root), "--slots=2", "--gpus-per-node=1", "-N", "0"]
    )
    lines = error_lines(capsys.readouterr().err)
    assert status == ExitStatus.CONFIG
    assert lines[0] == "error: invalid options:"
    assert lines[1] == "  - --nodes: must be a whole number >= 1, got 0"
    assert lines[2].startswith("  - --slots: give either slots")
    assert not root.exists()
    # Trials sharing a GPU with no GPU asked for: refused, not silently one trial per node.
    assert main(["submit", str(config), "--dir", str(root), "--trials-per-gpu", "2"]) == 3
    assert error_lines(capsys.readouterr().err) == [
        "error: invalid option --trials-per-gpu: 2 trials per GPU needs gpus_per_node "
        "(without GPUs, give the trials per node as slots)"
    ]


def test_without_sbatch_one_line_says_where_to_run_and_nothing_is_created(
    config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    root = tmp_path / "sweeps"
    assert main(["submit", str(config), "--dir", str(root)]) == ExitStatus.LAUNCH
    assert error_lines(capsys.readouterr().err) == [
        "error: sbatch not found: Slurm's commands are not on PATH. Run this on a login node of "
        "the cluster, or load the slurm module (`module load slurm`)."
    ]
    assert not root.exists()


# --- on the real cluster ----------------------------------------------------------------------


@pytest.mark.slurm
@pytest.mark.parametrize(
    ("flags", "slurm_words", "hint"),
    [
        (["--partition=nosuch"], "invalid partition specified: nosuch", "sinfo -s"),
        (["--gpus-per-node=3"], "Requested node configuration is not available", "sinfo -o"),
    ],
)
def test_slurm_refusing_the_job_is_one_line_and_leaves_no_sweep(
    slurm_cluster: object,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    slurm_words: str,
    hint: str,
) -> None:
    root = tmp_path / "sweeps"
    assert main(["submit", str(config), "--dir", str(root), *flags]) == ExitStatus.LAUNCH
    out, err = capsys.readouterr()
    [line] = error_lines(err)
    assert line.startswith("error: sbatch failed (exit 1): ") and slurm_words in line
    assert "Nothing was submitted; the sweep made for it was removed." in line
    assert hint in line
    assert out == ""
    assert list(root.iterdir()) == []  # the sweep created for the job is gone again


@pytest.mark.slurm
def test_two_nodes_run_every_grid_point_once_each_trial_on_its_own_gpu(
    slurm_cluster: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write_sweep(tmp_path, {"x": {"values": list(range(8))}, "sleep_s": {"value": 3}})
    root = tmp_path / "sweeps"
    scancel_at_end(request, root)
    argv = ["submit", str(config), "--dir", str(root), "--nodes", "2", "--gpus-per-node", "2"]
    argv += ["--trials-per-gpu", "1", "--name", "two nodes", "--run-cap", "50"]
    not_quiet = FAST_AGENT.replace(" -q", "")  # its progress lines are checked below
    assert main([*argv, "--agent-args", not_quiet]) == 0
    out = capsys.readouterr().out
    [store] = sweeps_under(root)
    assert (store.config.name, store.config.run_cap) == ("two nodes", 50)
    [job] = re.findall(r"^Submitted Slurm job (\d+) \(2 nodes x 2 trial\(s\) at once\)", out, re.M)
    assert f"Created sweep {store.sweep_id} in {store.path.resolve()}" in out
    assert f"sweepherd status {store.path.resolve()}" in out

    [record] = journal_events(store, "job")
    assert (record["job"], record["kind"], record["nodes"]) == (job, SUBMIT, 2)
    script = Path(record["script"])
    assert script == store.path.resolve() / "slurm" / "submit.sbatch" and script.is_file()
    assert record["options"]["gpus_per_node"] == 2 and record["options"]["nodes"] == 2

    [state] = poll(
        lambda: [s for s in squeue_jobs([job]) if s.is_terminal], 180, f"job {job} to end"
    )
    assert (state.state, state.exit_code) == ("COMPLETED", 0)
    # Which two of the four nodes depends on what the tests running beside this one hold.
    nodes = set(scontrol_show_hostnames(state.nodes or ""))
    assert len(nodes) == 2
    done = runs(store)
    assert sorted(r.params["x"] for r in done.values()) == list(range(8))
    assert {r.state for r in done.values()} == {RunState.FINISHED}
    assert {r.job for r in done.values()} == {job}
    ran = executions(tmp_path)
    assert Counter(e["run"] for e in ran) == Counter(dict.fromkeys(done, 1))  # each point once
    assert max(finished_results(store).values()) == 1

    assert {r.node for r in done.values()} == nodes  # spread over both nodes
    for e in ran:
        run = done[e["run"]]
        assert e["env"]["SLURMD_NODENAME"] == run.node
        assert e["env"]["CUDA_VISIBLE_DEVICES"] in ("0", "1")  # one GPU each...
        assert e["env"]["CUDA_VISIBLE_DEVICES"] == run.gpus
    for a, b in itertools.combinations(ran, 2):  # ...and never one GPU for two at once
        same_gpu = (a["env"]["SLURMD_NODENAME"], a["env"]["CUDA_VISIBLE_DEVICES"]) == (
            b["env"]["SLURMD_NODENAME"],
            b["env"]["CUDA_VISIBLE_DEVICES"],
        )
        overlap = a["start"] < b["end"] and b["start"] < a["end"]
        assert not (same_gpu and overlap), (a, b)
    output = store.path / "slurm" / f"{job}.out"
    assert output.is_file()
    # the batch process's own progress, with time and level, as the agents' lines have them
    assert re.search(r"\d\d:\d\d:\d\d sweepherd I started agents on 2 node", output.read_text())


@pytest.mark.slurm
def test_an_output_pattern_in_a_folder_that_does_not_exist_yet_gets_its_folder(
    slurm_cluster: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    """Slurm never creates an output folder: the job would end at once (JobLaunchFailure)
    with nothing written anywhere. A relative pattern is kept as the submit directory saw it,
    and the hint names the pattern, not sweepherd's default folder."""
    monkeypatch.chdir(tmp_path)
    config = write_sweep(tmp_path, {"x": {"values": [1]}})
    root = tmp_path / "sweeps"
    scancel_at_end(request, root)
    argv = ["submit", str(config), "--dir", str(root), "--output", "logs/deep/%x-%j.out"]
    not_quiet = FAST_AGENT.replace(" -q", "")  # the batch process's progress goes to the file
    assert main([*argv, "--job-name", "outjob", "--agent-args", not_quiet]) == 0
    out = capsys.readouterr().out
    [job] = re.findall(r"^Submitted Slurm job (\d+)", out, re.M)
    assert f"job output: {tmp_path / 'logs' / 'deep' / '%x-%j.out'}" in out
    [state] = poll(
        lambda: [s for s in squeue_jobs([job]) if s.is_terminal], 120, f"job {job} to end"
    )
    assert (state.state, state.exit_code) == ("COMPLETED", 0)
    assert (
        "started agents on 1 node" in (tmp_path / "logs" / "deep" / f"outjob-{job}.out").read_text()
    )


@pytest.mark.slurm
def test_status_shows_a_pending_job_before_any_run_exists(
    slurm_cluster: object,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    """Why nothing runs yet (the job waits for its start time, a partition limit...) is the
    first thing to look for, so the jobs are shown even with no run."""
    root = tmp_path / "sweeps"
    scancel_at_end(request, root)
    args = ["submit", str(config), "--dir", str(root), "--sbatch-arg=--begin=now+600"]
    assert main(args) == 0
    [store] = sweeps_under(root)
    capsys.readouterr()
    assert main(["status", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "no runs yet" in out
    assert "slurm jobs" in out and "PENDING" in out and "BeginTime" in out


@pytest.mark.slurm
def test_cpus_per_gpu_passed_through_replaces_the_automatic_cpus_per_task(
    slurm_cluster: object,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    """sbatch refuses --cpus-per-gpu beside --cpus-per-task ("mutually exclusive"), so the one
    CPU per trial that submit asks for by default gives way to the user's own."""
    root = tmp_path / "sweeps"
    scancel_at_end(request, root)
    argv = ["submit", str(config), "--dir", str(root), "--gpus-per-node", "2"]
    argv += ["--sbatch-arg=--cpus-per-gpu=1", "--agent-args", FAST_AGENT]
    assert main(argv) == 0
    [job] = re.findall(r"^Submitted Slurm job (\d+)", capsys.readouterr().out, re.M)
    [store] = sweeps_under(root)
    script = (store.path / "slurm" / "submit.sbatch").read_text()
    assert "--cpus-per-gpu=1" in script and "--cpus-per-task" not in script
    [state] = poll(
        lambda: [s for s in squeue_jobs([job]) if s.is_terminal], 120, f"job {job} to end"
    )
    assert (state.state, state.exit_code) == ("COMPLETED", 0)
    assert sorted(r.params["x"] for r in runs(store).values()) == [1, 2]


def test_cpus_per_task_beside_cpus_per_gpu_is_refused_naming_both(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", str(config), "--dir", str(tmp_path / "s"), "--gpus-per-node", "2"]
    argv += ["--cpus-per-task", "4", "--sbatch-arg=--cpus-per-gpu=1", "--dry-run"]
    assert main(argv) == ExitStatus.CONFIG
    err = capsys.readouterr().err
    assert "either --cpus-per-task or --cpus-per-gpu, not both" in err


@pytest.mark.slurm
def test_an_sbatch_that_never_answers_keeps_the_sweep_and_says_how_to_check(
    slurm_cluster: object,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real sbatch, pointed at a "controller" that takes its connection and never answers
    (a silent listener on 127.0.0.1, as an overloaded slurmctld looks): the job may or may not
    exist, so the sweep is kept and named."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        conf = tmp_path / "slurm.conf"
        text = Path(os.environ["SLURM_CONF"]).read_text()
        conf.write_text(re.sub(r"^SlurmctldPort=\d+", f"SlurmctldPort={silent.getsockname()[1]}",
                               text, flags=re.M))  # fmt: skip
        monkeypatch.setenv("SLURM_CONF", str(conf))
        monkeypatch.setattr(slurm_launcher, "SBATCH_TIMEOUT_S", 3.0)
        root = tmp_path / "sweeps"
        assert main(["submit", str(config), "--dir", str(root)]) == ExitStatus.LAUNCH
    [line] = error_lines(capsys.readouterr().err)
    [store] = sweeps_under(root)
    assert line.startswith("error: sbatch did not answer within 3 s. The job may or may not")
    assert f"the sweep {store.sweep_id} is kept in {store.path.resolve()}." in line
    assert "squeue --me --name sweepherd-" in line and "sweepherd scale " in line
    assert (store.path / "slurm" / "submit.sbatch").is_file()
