"""``sweepherd sync SWEEP``: upload the sweep's ended offline wandb runs to W&B, once each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sweepherd.cli._common import sweep_argument

if TYPE_CHECKING:
    from sweepherd.wandb import SyncItem


@click.command()
@sweep_argument
@click.option("--watch", is_flag=True, help="Keep syncing runs as they end, until Ctrl-C.")
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(min=1.0),
    default=60.0,
    show_default=True,
    help="Seconds between passes with --watch.",
)
@click.option("--project", "-p", help="W&B project (default: the sweep config's `project`).")
@click.option("--entity", "-e", help="W&B entity (default: the sweep config's `entity`).")
@click.option("--dry-run", is_flag=True, help="Show what would be synced, and how; send nothing.")
def sync(
    sweep: str,
    root: Path,
    watch: bool,
    interval_s: float,
    project: str | None,
    entity: str | None,
    dry_run: bool,
) -> None:
    """Upload SWEEP's ended runs (finished, failed, stopped, killed) to W&B with `wandb sync`.

    Each run goes up once, all its attempts together under its own run id, in the W&B group
    named after the sweep (set when the run ran). Runs already synced are skipped, so this is
    safe to run again. Needs `wandb login` (or WANDB_API_KEY) and network access to W&B: run it
    on a login node.
    """
    from sweepherd.store import open_sweep
    from sweepherd.wandb import ALIVE_QUIET_S, plan_sync, wandb_sync_argv
    from sweepherd.wandb import sync as sync_runs

    store = open_sweep(sweep, root)
    project = project or store.wandb_project
    entity = entity or store.config.entity
    if dry_run:
        plan = plan_sync(store)
        for item in plan.items:
            click.echo(f"{item.run_id} ({item.state.value}): {_describe(item)}")
            for argv in wandb_sync_argv(item, project=project, entity=entity):
                click.echo("  " + " ".join(argv))
        for run_id in plan.waiting:
            click.echo(
                f"{run_id}: its wandb files changed seconds ago, or a later attempt is being "
                "stopped; synced on the next pass"
            )
        for run_id in plan.deferred:
            click.echo(f"{run_id}: {_STILL_WRITTEN}; synced once it has ended")
        for run_id, folder in plan.unreachable:
            click.echo(f"{run_id}: {_unreachable(folder)}")
        click.echo(f"{len(plan.items)} run(s) to sync" if plan.items else "nothing to sync")
        return

    def report(item: SyncItem, error: str | None) -> None:
        if error is None:
            click.echo(f"synced {item.run_id} ({item.state.value}): {_describe(item)}")
        else:
            click.echo(f"failed {item.run_id}: {error}", err=True)

    def waiting(run_ids: list[str]) -> None:
        click.echo(
            f"waiting for {len(run_ids)} run(s) whose wandb files changed seconds ago, or "
            f"whose later attempt is being stopped: {', '.join(run_ids)}",
            err=True,
        )

    try:
        result = sync_runs(
            store,
            project=project,
            entity=entity,
            watch=watch,
            interval_s=interval_s,
            on_item=report,
            on_waiting=waiting,
        )
    except KeyboardInterrupt:
        if not watch:
            raise
        click.echo("stopped", err=sys.stderr.isatty())
        return
    click.echo(f"{len(result.synced)} run(s) synced" if result.synced else "nothing to sync")
    for run_id, folder in result.unreachable:
        click.echo(f"not synced: {run_id}: {_unreachable(folder)}", err=True)
    if result.deferred:
        click.echo(
            f"left for later: {', '.join(result.deferred)}: {_STILL_WRITTEN}. Run `sweepherd "
            f"sync` again once its log has been quiet for {ALIVE_QUIET_S / 60:g} min, or use "
            "--watch.",
            err=True,
        )


_STILL_WRITTEN = "declared lost, but its trial still writes its wandb log (it may yet finish)"


def _unreachable(folder: str) -> str:
    return (
        f"its script wrote its wandb log outside the sweep, to {folder}, which this machine "
        "cannot see; sync it from one that does (or copy that folder there)"
    )


def _describe(item: SyncItem) -> str:
    parts = [f"{len(item.files)} attempt(s) to send"]
    if item.torn:
        parts.append(f"{len(item.torn)} with a torn tail")
    if item.empty:
        parts.append(f"{len(item.empty)} empty (killed before wandb wrote anything)")
    if item.done:
        parts.append(f"{len(item.done)} already synced by wandb")
    if item.later:
        parts.append(f"{len(item.later)} left out (an earlier attempt's result ended the run)")
    return ", ".join(parts)
