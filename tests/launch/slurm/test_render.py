"""The sbatch scripts, compared exactly with golden files (no I/O but reading them).

Regenerate the golden files after an intended change with
``SWEEPHERD_REGEN_GOLDEN=1 .venv/bin/pytest tests/launch/slurm/test_render.py`` and review the
diff. That the scripts mean to Slurm and bash what they say is checked on the real cluster in
test_commands.py (directives, quoting, setup, exports, the agent's argv).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from support.golden import check_golden
from sweepherd.errors import ConfigError
from sweepherd.launch.slurm import SbatchOptions, render_scale, render_submit, sbatch_quote

GOLDEN = Path(__file__).parent / "golden"
PY = "/opt/venv/bin/python"

#: A value holding everything that must survive quoting.
NASTY = 'it\'s a "test" $HOME; rm -rf / # not a comment \\ `x` %j'

CASES: dict[str, tuple[SbatchOptions, int | None]] = {
    "submit_minimal": (SbatchOptions(sweep_dir=Path("/sweeps/abc"), python=PY), None),
    "submit_gpus_full": (
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
            sbatch_args=("--constraint=a100|h100", "--exclusive", "--mail-type=END,FAIL"),
            env={"WANDB_PROJECT": "lr-search", "WANDB_ENTITY": "team"},
            signal_grace_s=300,
            python=PY,
            agent_args=("--lost-after", "120"),
        ),
        None,
    ),
    "submit_cpu_slots_no_requeue": (
        SbatchOptions(
            sweep_dir=Path("/sweeps/cpu"),
            nodes=2,
            slots=8,
            requeue=False,
            output="/logs/%x-%j.log",
            python=PY,
        ),
        None,
    ),
    "submit_nasty_values": (
        SbatchOptions(
            sweep_dir=Path("/sweeps/with space/it's $dir;%x"),
            job_name=NASTY,
            partition="p;q",
            account='a"b',
            sbatch_args=(f"--comment={NASTY}",),
            env={"NOTE": NASTY},
            setup=("echo 'setup lines are shell, not quoted' && export X=$HOME",),
            python="/opt/my env/bin/python",
            agent_args=(NASTY,),
        ),
        None,
    ),
    "scale_gpus": (
        SbatchOptions(
            sweep_dir=Path("/shared/sweeps/lr-search"),
            gpus_per_node=2,
            partition="gpu",
            time="4:00:00",
            array_max_parallel=16,
            stagger_s=30,
            python=PY,
        ),
        200,
    ),
    "scale_one_no_stagger": (
        SbatchOptions(sweep_dir=Path("/sweeps/abc"), stagger_s=0, python=PY),
        1,
    ),
    "scale_nasty_values": (
        SbatchOptions(
            sweep_dir=Path("/sweeps/with space/it's $dir;%x"),
            job_name=NASTY,
            env={"NOTE": NASTY},
            stagger_s=2.5,
            python="/opt/my env/bin/python",
        ),
        3,
    ),
}


def _render(name: str) -> str:
    options, n_nodes = CASES[name]
    return render_submit(options) if n_nodes is None else render_scale(options, n_nodes)


@pytest.mark.parametrize("name", sorted(CASES))
def test_scripts_match_golden_files(name: str) -> None:
    check_golden(GOLDEN / f"{name}.sbatch", _render(name))


def test_rendering_is_pure() -> None:
    options, _ = CASES["submit_gpus_full"]
    assert render_submit(options) == render_submit(options)
    assert render_scale(options, 3) == render_scale(options, 3)


def test_agent_argv_survives_the_shell() -> None:
    """The exec line, split as bash would, is exactly the agent's argv."""
    options, _ = CASES["submit_nasty_values"]
    exec_line = next(ln for ln in render_submit(options).splitlines() if ln.startswith("exec "))
    assert shlex.split(exec_line)[1:] == [
        "/opt/my env/bin/python",
        "-m",
        "sweepherd",
        "agent",
        "/sweeps/with space/it's $dir;%x",
        "--all-nodes",
        NASTY,
    ]


def test_gpus_give_the_agent_its_gpus_and_trials_per_gpu() -> None:
    options, _ = CASES["submit_gpus_full"]
    exec_line = render_submit(options).splitlines()[-1]
    assert "--all-nodes --gpus auto --trials-per-gpu 2 --lost-after 120" in exec_line
    assert "#SBATCH --gres=gpu:4\n" in render_submit(options)


def test_directives_come_before_any_command() -> None:
    """sbatch stops reading #SBATCH lines at the first command."""
    for name in CASES:
        lines = _render(name).splitlines()
        last_directive = max(i for i, ln in enumerate(lines) if ln.startswith("#SBATCH"))
        assert all(ln.startswith("#") for ln in lines[:last_directive]), name


def test_default_output_escapes_percent_in_the_sweep_path() -> None:
    options = SbatchOptions(sweep_dir=Path("/s/100%done"), python=PY)
    assert "#SBATCH --output=/s/100%%done/slurm/%j.out" in render_submit(options)
    assert "#SBATCH --output=/s/100%%done/slurm/%A_%a.out" in render_scale(options, 2)


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("gpu", "gpu"),
        ("4:00:00", "4:00:00"),
        ("/a/b/%j.out", "/a/b/%j.out"),
        ("a b", '"a b"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("x#y", '"x#y"'),
        ("it's", '"it\'s"'),
    ],
)
def test_sbatch_quote(value: str, quoted: str) -> None:
    assert sbatch_quote(value) == quoted


@pytest.mark.parametrize("n_nodes", [0, -1, True, 1.5])
def test_scale_needs_a_positive_node_count(n_nodes: object) -> None:
    options = SbatchOptions(sweep_dir=Path("/sweeps/abc"), python=PY)
    with pytest.raises(ConfigError, match="number of nodes to add"):
        render_scale(options, n_nodes)  # type: ignore[arg-type]
