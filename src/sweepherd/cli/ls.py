"""``sweepherd ls``: the sweeps under a folder, with their state and best value."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sweepherd.cli._common import root_option


@click.command()
@root_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def ls(root: Path, as_json: bool) -> None:
    """List the sweeps under --dir, oldest first: name, method, state, runs done, best value.

    A sweep is running (a run is in flight), done (grid exhausted, run_cap or the metric's
    target reached), paused (runs remain but none runs: start an agent), cancelled, empty, or
    wandb (created with --backend wandb: its runs are on W&B, see `sweepherd status`).
    """
    import dataclasses

    from rich.console import Console

    from sweepherd.errors import StoreError
    from sweepherd.monitor import overview, overview_table
    from sweepherd.store import list_sweeps

    if not root.exists():
        raise StoreError(
            f"No folder {root}: there are no sweeps there.",
            hint="Point --dir (or SWEEPHERD_DIR) at the folder that holds the sweep directories.",
        )
    rows = [overview(store) for store in list_sweeps(root)]
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return
    console = Console()
    if not rows:
        console.print(f"no sweeps in {root}", style="dim", highlight=False, markup=False)
        return
    console.print(overview_table(rows))
    for row in rows:
        if row.problem:
            console.print(
                f"{row.sweep_id}: {row.problem}", style="red", highlight=False, markup=False
            )
