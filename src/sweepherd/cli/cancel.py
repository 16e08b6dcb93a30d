"""``sweepherd cancel SWEEP``: stop a sweep."""

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

    With Slurm, the sweep's jobs are cancelled too.
    """
    from sweepherd.store import open_sweep

    store = open_sweep(sweep, root)
    with store.transaction() as txn:
        already = txn.snapshot.cancelled
        if not already:
            txn.cancel(reason)
    if already:
        click.echo(f"sweep {store.sweep_id} was already cancelled")
        return
    click.echo(f"sweep {store.sweep_id} cancelled; its agents stop within seconds")
