"""``sweepherd create sweep.yaml``: create a sweep and start nothing (as ``wandb sweep`` does)."""

from __future__ import annotations

from pathlib import Path

import click

from sweepherd.cli._common import root_option


@click.command()
@click.argument("config_path", metavar="SWEEP_YAML", type=click.Path(path_type=Path))
@root_option
@click.option("--run-cap", type=int, default=None, help="Stop after this many runs (sets run_cap).")
@click.option("--name", default=None, help="A name for the sweep (default: the config's name).")
def create(config_path: Path, root: Path, run_cap: int | None, name: str | None) -> None:
    """Create a sweep from SWEEP_YAML, start no agent, and print how to start them.

    For agents you start yourself, as after `wandb sweep`: in an allocation you hold (salloc,
    `srun --pty bash`), in tmux on machines that share the sweep folder, or later with
    `sweepherd scale`. `run` and `submit` create a sweep and start its agents in one step.
    """
    from sweepherd.launch import prepare_sweep

    store = prepare_sweep(config_path, root, run_cap=run_cap, name=name)
    path = store.path.resolve()
    click.echo(f"Created sweep {store.sweep_id} in {path}")
    click.echo("Start its agents with:")
    click.echo(f"  sweepherd agent {path}                          # here, or any machine")
    click.echo(f"  sweepherd agent {path} --all-nodes --gpus auto  # in a Slurm allocation")
    click.echo(f"  sweepherd scale {path} --nodes N                # as a Slurm job array")
