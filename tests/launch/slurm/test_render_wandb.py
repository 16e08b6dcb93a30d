"""The ``--backend wandb`` sbatch script: golden files, and its per-node part run by bash.

Regenerate the golden files after an intended change with
``SWEEPHERD_REGEN_GOLDEN=1 .venv/bin/pytest tests/launch/slurm/test_render_wandb.py`` and
review the diff. The script on the real cluster: tests/wandb/test_backend_slurm.py.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from support.golden import check_golden
from support.wandb_standin import agent_starts, write_wandb_command
from sweepherd.launch.slurm import SbatchOptions, render_wandb_submit

GOLDEN = Path(__file__).parent / "golden"
WANDB = "/opt/venv/bin/wandb"
NASTY = 'it\'s a "test" $HOME; rm -rf / # not a comment \\ `x` %j'

CASES: dict[str, tuple[SbatchOptions, dict[str, object]]] = {
    "wandb_submit_gpus_full": (
        SbatchOptions(
            sweep_dir=Path("/shared/sweeps/lr-search"),
            nodes=4,
            gpus_per_node=4,
            trials_per_gpu=2,
            cpus_per_task=32,
            mem="256G",
            partition="gpu",
            time="1-12:00:00",
            qos="high",
            account="proj-42",
            job_name="lr search",
            setup=("module load cuda/12.1", "source /shared/venv/bin/activate"),
            sbatch_args=("--constraint=a100|h100", "--exclusive"),
            env={"WANDB_API_KEY_FILE": "/home/me/.wandb-key"},
        ),
        {"sweep_args": ["team/proj/abc123"], "workdir": Path("/home/me/project"), "count": 3},
    ),
    "wandb_submit_cpu_slots_no_requeue": (
        SbatchOptions(sweep_dir=Path("/sweeps/cpu"), nodes=2, slots=3, requeue=False),
        {"sweep_args": ["--entity", "team", "abc123"], "workdir": Path("/work"), "count": None},
    ),
    "wandb_submit_nasty_values": (
        SbatchOptions(
            sweep_dir=Path("/sweeps/it's $x"),
            gpus_per_node=1,
            job_name=NASTY,
            env={"NOTE": NASTY},
        ),
        {"sweep_args": ["e/p/abc"], "workdir": Path("/my work/it's"), "count": 1},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_script_matches_its_golden_file(name: str) -> None:
    options, kw = CASES[name]
    check_golden(GOLDEN / f"{name}.sbatch", render_wandb_submit(options, wandb=WANDB, **kw))  # type: ignore[arg-type]


def _exec_line(script: str) -> list[str]:
    """The words of the last command, ``exec srun ... bash -c '<per-node part>'``."""
    return shlex.split(script[script.index("\nexec srun ") :])


def test_srun_starts_one_task_per_node() -> None:
    options, kw = CASES["wandb_submit_gpus_full"]
    argv = _exec_line(render_wandb_submit(options, **kw))  # type: ignore[arg-type]
    assert argv[:6] == ["exec", "srun", "--nodes=4", "--ntasks=4", "--ntasks-per-node=1", "bash"]
    assert argv[6] == "-c" and len(argv) == 8
    assert "cd /home/me/project" in render_wandb_submit(options, **kw)  # type: ignore[arg-type]


def _run_node_part(
    tmp_path: Path, options: SbatchOptions, env: dict[str, str], count: int | None
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    """Run the script's per-node part with bash, as srun would on a node, with the stand-in
    ``wandb`` (``wandb agent`` needs the W&B server) recording each agent it starts."""
    wandb = write_wandb_command(tmp_path / "bin dir")
    records = tmp_path / "records"
    records.mkdir()
    (options.sweep_dir / "slurm").mkdir(parents=True)
    script = render_wandb_submit(
        options, sweep_args=["e/p/abc"], workdir=tmp_path, count=count, wandb=str(wandb)
    )
    node_part = _exec_line(script)[7]
    logs = options.sweep_dir / "slurm"
    proc = subprocess.run(
        ["bash", "-c", node_part],
        env={
            **{k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"},
            "WANDB_STANDIN_DIR": str(records),
            "SLURM_JOB_ID": "77",
            "SLURMD_NODENAME": "node9",
            "SWEEPHERD_WANDB_AGENT_LOGS": str(logs),  # exported by the script
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc, agent_starts(records)


def test_each_node_starts_one_agent_per_gpu_slot_pinned_to_its_gpu(tmp_path: Path) -> None:
    options = SbatchOptions(sweep_dir=tmp_path / "sw $x", gpus_per_node=2, trials_per_gpu=2)
    proc, starts = _run_node_part(tmp_path, options, {"CUDA_VISIBLE_DEVICES": "4,7"}, count=5)
    assert proc.returncode == 0, proc.stderr
    assert sorted(s["env"]["CUDA_VISIBLE_DEVICES"] for s in starts) == ["4", "4", "7", "7"]
    assert all(
        s["argv"] == ["agent", "--count", "5", "--forward-signals", "e/p/abc"] for s in starts
    )
    logs = sorted(p.name for p in (options.sweep_dir / "slurm").iterdir())
    assert logs == [f"wandb-agent-77-node9-{i}.log" for i in range(4)]


def test_nodes_without_gpus_start_slots_agents(tmp_path: Path) -> None:
    options = SbatchOptions(sweep_dir=tmp_path / "sw", slots=3)
    proc, starts = _run_node_part(tmp_path, options, {}, count=None)
    assert proc.returncode == 0, proc.stderr
    assert len(starts) == 3
    assert all(s["argv"] == ["agent", "--forward-signals", "e/p/abc"] for s in starts)


def test_a_gpu_node_that_got_no_gpus_fails_loudly(tmp_path: Path) -> None:
    options = SbatchOptions(sweep_dir=tmp_path / "sw", gpus_per_node=1)
    proc, starts = _run_node_part(tmp_path, options, {}, count=1)
    assert proc.returncode != 0
    assert "Slurm gave no GPUs to this task" in proc.stderr
    assert starts == []
