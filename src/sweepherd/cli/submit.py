"""``sweepherd submit SWEEP_YAML``: create a sweep and submit its agents to Slurm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sweepherd.cli._common import root_option
from sweepherd.cli._slurm_options import flagged, job_summary, settings_from, slurm_options
from sweepherd.cli._wandb_backend import backend_option
from sweepherd.errors import ConfigError


@click.command()
@click.argument("config_path", metavar="SWEEP_YAML", type=click.Path(path_type=Path))
@root_option
@click.option("--nodes", "-N", type=int, default=None, help="Nodes, one agent each; default 1.")
@slurm_options
@click.option("--run-cap", type=int, default=None, help="Stop after this many runs (sets run_cap).")
@click.option("--name", default=None, help="A name for the sweep (default: the config's name).")
@click.option("--dry-run", is_flag=True, help="Print the sbatch script; create and submit nothing.")
@backend_option
def submit(
    config_path: Path,
    root: Path,
    run_cap: int | None,
    name: str | None,
    dry_run: bool,
    backend: str,
    **params: Any,
) -> None:
    """Create a sweep from SWEEP_YAML and submit one Slurm job that runs it on N nodes.

    The sweep is created first, under --dir (put it on the shared filesystem); the sbatch
    script goes to its slurm/ folder. In the job, srun starts one agent per node, each running
    one trial per GPU slot (--gpus-per-node x --trials-per-gpu) or per --slots. Before the time
    limit, Slurm's warning signal makes the agents stop their trials (kept as preempted) and
    the job requeue itself; the preempted runs resume first, with the same run ids.

    \b
    Example:
      sweepherd submit sweep.yaml --dir /shared/sweeps --nodes 4 --gpus-per-node 4 \\
          --partition gpu --time 4:00:00 --setup "source /shared/venv/bin/activate"
    """
    from sweepherd.launch.slurm import SlurmLauncher

    settings = settings_from(params)
    if backend == "wandb":
        from sweepherd.cli._wandb_backend import submit_with_wandb

        try:
            submit_with_wandb(
                config_path, root, settings, run_cap=run_cap, name=name, dry_run=dry_run
            )
        except ConfigError as exc:
            raise flagged(exc) from None
        return
    try:
        if dry_run:
            preview = SlurmLauncher.preview_submit(
                config_path, root, settings, run_cap=run_cap, name=name
            )
            click.echo(preview.script, nl=False)
            click.echo(
                "# dry run: nothing was created or submitted (the sweep directory name is "
                "chosen at submit)",
                err=True,
            )
            return
        done = SlurmLauncher.submit(config_path, root, settings, run_cap=run_cap, name=name)
    except ConfigError as exc:
        raise flagged(exc) from None
    assert done.store is not None and done.script_path is not None  # a real submit sets them
    path = done.store.path.resolve()
    click.echo(f"Created sweep {done.store.sweep_id} in {path}")
    summary = job_summary(done.n_nodes, done.options, array=False)
    click.echo(f"Submitted Slurm job {done.job_id} ({summary}); script: {done.script_path}")
    click.echo(f"  progress:   sweepherd status {path}")
    output = done.options.output if done.options is not None else None
    click.echo(f"  job output: {output or str(path / 'slurm') + '/'}")
    click.echo(f"  more nodes: sweepherd scale {path} --nodes N")
    click.echo(f"  stop:       sweepherd cancel {path}")
