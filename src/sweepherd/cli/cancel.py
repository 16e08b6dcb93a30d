"""``sweepherd cancel SWEEP``: stop a sweep, and the Slurm jobs that run its agents."""

from __future__ import annotations

from pathlib import Path

import click

from sweepherd.cli._common import sweep_argument


@click.command()
@sweep_argument
@click.option(
    "--reason",
    default="cancelled by the user",
    show_default=True,
    help="Recorded in the sweep's journal.",
)
def cancel(sweep: str, root: Path, reason: str) -> None:
    """Cancel SWEEP: no new runs start; agents stop their running runs (marked killed) and exit.

    The Slurm jobs submitted for the sweep (`sweepherd submit`, `scale`) are cancelled too,
    with scancel, after the sweep is marked cancelled.
    """
    from sweepherd.launch.slurm import SlurmLauncher
    from sweepherd.store import open_sweep

    store = open_sweep(sweep, root)
    with store.transaction() as txn:
        already = txn.snapshot.cancelled
        if not already:
            txn.cancel(reason)
    if already:
        click.echo(f"sweep {store.sweep_id} was already cancelled")
    else:
        click.echo(f"sweep {store.sweep_id} cancelled; its agents stop within seconds")
    report = SlurmLauncher(store).cancel_jobs()
    if report.cancelled:
        click.echo(f"cancelled Slurm job(s) {', '.join(report.cancelled)}")
    if report.ended:
        click.echo(f"Slurm job(s) {', '.join(report.ended)} had already ended")
    if report.unavailable:
        jobs = ", ".join(report.unavailable_jobs)
        click.echo(
            f"Slurm job(s) {jobs} were not cancelled: {report.unavailable} "
            f"Run `scancel {' '.join(report.unavailable_jobs)}` where Slurm is.",
            err=True,
        )
