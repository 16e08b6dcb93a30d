"""``sweepherd best SWEEP``: the best runs so far."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sweepherd.cli._common import sweep_argument


@click.command()
@sweep_argument
@click.option(
    "-n", "n", type=click.IntRange(min=1), default=5, show_default=True, help="How many runs."
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def best(sweep: str, root: Path, n: int, as_json: bool) -> None:
    """Show SWEEP's best runs by its metric, best first, with their parameters."""
    from rich.console import Console

    from sweepherd.errors import ConfigError
    from sweepherd.monitor import best_runs, best_table, run_as_dict
    from sweepherd.store import open_sweep

    store = open_sweep(sweep, root)
    config = store.config
    if config.metric is None:
        raise ConfigError(
            f"sweep {store.sweep_id} has no metric, so no run is better than another",
            hint="add `metric: {name: ..., goal: minimize}` to the config of your next sweep",
        )
    runs = list(store.snapshot().runs.values())
    if as_json:
        click.echo(json.dumps([run_as_dict(r) for r in best_runs(config, runs, n)], indent=2))
        return
    console = Console()
    if not best_runs(config, runs, 1):
        console.print(f"no run has reported {config.metric.name} yet", style="dim", markup=False)
        return
    console.print(best_table(config, runs, n))
