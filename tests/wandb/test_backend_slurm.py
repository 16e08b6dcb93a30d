"""``sweepherd submit --backend wandb``: through the real CLI, and on the real local Slurm.

Stood in for, because they need the W&B server, and only they: ``wandb.sweep`` (a recorded
fake at the function boundary) and the ``wandb`` command (a script on PATH that records each
``wandb agent`` start: its argv, GPU and node). The CLI, sbatch, srun and the cluster are real.
"""

from __future__ import annotations

import math
import os
import re
import signal
from collections import Counter
from pathlib import Path

import pytest
import yaml

from support.slurm_sweeps import journal_events, poll, scancel_at_end, sweeps_under
from support.wandb_standin import (
    SWEEP_ID,
    RecordedSweepCreator,
    agent_starts,
    same_signature_as_wandb_sweep,
    write_wandb_command,
)
from sweepherd.cli.main import main
from sweepherd.errors import ExitStatus
from sweepherd.launch.slurm import squeue_jobs
from sweepherd.wandb._backend_slurm import JOB_KIND

pytestmark = pytest.mark.wandb
N_GRID = 12


@pytest.fixture
def creator(monkeypatch: pytest.MonkeyPatch) -> RecordedSweepCreator:
    wandb = pytest.importorskip("wandb")
    assert same_signature_as_wandb_sweep()
    fake = RecordedSweepCreator()
    monkeypatch.setattr(wandb, "sweep", fake)
    return fake


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with train.py and sweep.yaml (a 12-point grid in project "proj"), the stand-in
    ``wandb`` first on PATH, and its records in ``records/``."""
    (tmp_path / "train.py").write_text("import wandb\n")
    config = {
        "program": "train.py",
        "method": "grid",
        "project": "proj",
        "parameters": {"x": {"values": list(range(N_GRID))}},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    bin_dir = tmp_path / "bin"
    write_wandb_command(bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "records").mkdir()
    monkeypatch.setenv("WANDB_STANDIN_DIR", str(tmp_path / "records"))
    for name in ("WANDB_ENTITY", "WANDB_PROJECT", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_dry_run_prints_the_script_and_creates_nothing_not_even_the_wandb_sweep(
    project: Path, creator: RecordedSweepCreator, capsys: pytest.CaptureFixture[str]
) -> None:
    root = project / "sweeps"
    argv = ["submit", "sweep.yaml", "--dir", str(root), "--backend", "wandb", "--dry-run"]
    assert main([*argv, "--nodes", "3", "--gpus-per-node", "2", "--trials-per-gpu", "2"]) == 0
    out, err = capsys.readouterr()
    assert creator.calls == []
    assert not root.exists()
    assert "SWEEP_ID stands for its id" in err
    assert out.startswith("#!/bin/bash\n# sweepherd: W&B agents: wandb agent proj/SWEEP_ID\n")
    assert "#SBATCH --nodes=3\n" in out and "#SBATCH --gres=gpu:2\n" in out
    # 12 grid points over 3 nodes x 2 GPUs x 2 trials = 12 agents: one run each
    wandb = project / "bin" / "wandb"
    assert f"{wandb} agent --count 1 --forward-signals proj/SWEEP_ID >" in out
    assert f"cd {project}\n" in out


def test_agent_args_are_refused_since_wandb_agent_takes_none(
    project: Path, creator: RecordedSweepCreator, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "sweep.yaml", "--backend", "wandb", "--agent-args", "--lost-after 9"]
    assert main(argv) == ExitStatus.CONFIG
    assert "--agent-args: only sweepherd's own agents take it" in capsys.readouterr().err
    assert creator.calls == []


def test_without_slurm_nothing_is_created_not_even_the_wandb_sweep(
    project: Path,
    creator: RecordedSweepCreator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(project / "bin"))  # no sbatch here
    assert main(["submit", "sweep.yaml", "--backend", "wandb"]) == ExitStatus.LAUNCH
    assert "sbatch not found" in capsys.readouterr().err
    assert creator.calls == []
    assert not (project / "sweeps").exists()


@pytest.mark.slurm
def test_each_node_runs_one_wandb_agent_per_gpu_slot(
    slurm_cluster: object,
    project: Path,
    creator: RecordedSweepCreator,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    root = project / "sweeps"
    scancel_at_end(request, root)
    argv = ["submit", "sweep.yaml", "--dir", str(root), "--backend", "wandb", "--nodes", "2"]
    assert main([*argv, "--gpus-per-node", "2", "--trials-per-gpu", "2"]) == 0
    out = capsys.readouterr().out
    [store] = sweeps_under(root)
    [job] = re.findall(r"^Submitted Slurm job (\d+): 8 `wandb agent` process", out, re.M)
    assert f"Created W&B sweep proj/{SWEEP_ID}" in out
    assert creator.calls[0]["project"] == "proj"
    assert store.meta["backend"] == "wandb" and store.meta["wandb"]["sweep_id"] == SWEEP_ID
    [record] = journal_events(store, "job")
    assert (record["job"], record["kind"], record["nodes"]) == (job, JOB_KIND, 2)

    [state] = poll(
        lambda: [s for s in squeue_jobs([job]) if s.is_terminal], 180, f"job {job} to end"
    )
    assert (state.state, state.exit_code) == ("COMPLETED", 0)
    starts = agent_starts(project / "records")
    assert len(starts) == 8
    count = str(math.ceil(N_GRID / 8))
    assert all(
        s["argv"] == ["agent", "--count", count, "--forward-signals", f"proj/{SWEEP_ID}"]
        for s in starts
    )
    assert all(Path(s["cwd"]) == project and s["env"]["SLURM_JOB_ID"] == job for s in starts)
    per_node = Counter(s["env"]["SLURMD_NODENAME"] for s in starts)
    assert sorted(per_node.values()) == [4, 4] and len(per_node) == 2
    for node in per_node:  # on each node: each of its 2 GPUs runs 2 agents
        gpus = Counter(
            s["env"]["CUDA_VISIBLE_DEVICES"] for s in starts if s["env"]["SLURMD_NODENAME"] == node
        )
        assert sorted(gpus.values()) == [2, 2] and all("," not in g for g in gpus)
    logs = list((store.path / "slurm").glob(f"wandb-agent-{job}-*.log"))
    assert len(logs) == 8 and all("stand-in started" in p.read_text() for p in logs)


@pytest.mark.slurm
def test_sweepherd_cancel_stops_the_job_and_its_agents(
    slurm_cluster: object,
    project: Path,
    creator: RecordedSweepCreator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    root = project / "sweeps"
    scancel_at_end(request, root)
    monkeypatch.setenv("WANDB_STANDIN_SLEEP_S", "300")  # agents that wait for runs
    assert main(["submit", "sweep.yaml", "--dir", str(root), "--backend", "wandb"]) == 0
    [store] = sweeps_under(root)
    [record] = journal_events(store, "job")
    poll(lambda: agent_starts(project / "records"), 60, "the agent to start")
    capsys.readouterr()

    assert main(["cancel", str(store.path)]) == 0
    assert f"cancelled Slurm job(s) {record['job']}" in capsys.readouterr().out
    poll(
        lambda: [s for s in squeue_jobs([record["job"]]) if s.is_terminal],
        60,
        "the job to end",
    )
    [start] = poll(
        lambda: [s for s in agent_starts(project / "records") if "signal" in s],
        30,
        "the agent to record its signal",
    )
    assert start["signal"] == signal.SIGTERM  # wandb agent forwards it to its run
