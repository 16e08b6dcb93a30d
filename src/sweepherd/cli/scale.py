"""``sweepherd scale SWEEP --nodes N``: add N one-node agents to a running sweep (a job array)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sweepherd.cli._common import sweep_argument
from sweepherd.cli._slurm_options import flagged, job_summary, settings_from, slurm_options
from sweepherd.errors import ConfigError


@click.command()
@sweep_argument
@click.option(
    "--nodes", "-N", "n_nodes", type=int, required=True, help="Nodes to add, one agent each."
)
@slurm_options
@click.option(
    "--stagger",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Spread the agents' starts over this long; default 10.",
)
@click.option(
    "--max-parallel",
    type=int,
    default=None,
    help="At most this many of the new nodes at once (--array=...%N).",
)
@click.option("--dry-run", is_flag=True, help="Print the sbatch script; submit nothing.")
def scale(sweep: str, root: Path, n_nodes: int, dry_run: bool, **params: Any) -> None:
    """Add N nodes to SWEEP: a Slurm job array of N one-node elements, one agent each.

    The elements take the resources the sweep was submitted with (GPUs, partition, time,
    setup lines...) unless an option here says otherwise, and start staggered so that many
    agents do not reach the sweep directory in the same second. A cancelled or finished sweep
    is refused.
    """
    from sweepherd.launch.slurm import SlurmLauncher
    from sweepherd.store import open_sweep

    if n_nodes < 1:
        raise click.BadParameter("must be at least 1", param_hint="--nodes")
    store = open_sweep(sweep, root)
    launcher = SlurmLauncher(store)
    settings = settings_from(params)
    try:
        done = launcher.scale(n_nodes, settings, dry_run=dry_run)
    except ConfigError as exc:
        raise flagged(exc) from None
    if dry_run:
        click.echo(done.script, nl=False)
        click.echo("# dry run: nothing was submitted", err=True)
        return
    path = store.path.resolve()
    click.echo(
        f"Submitted Slurm job array {done.job_id} to sweep {store.sweep_id} "
        f"({job_summary(n_nodes, done.options, array=True)}); script: {done.script_path}"
    )
    click.echo(f"  progress: sweepherd status {path}")
