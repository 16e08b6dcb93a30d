"""``sweepherd status SWEEP``: the sweep's progress and every run."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sweepherd.cli._common import sweep_argument
from sweepherd.runs import Run

if TYPE_CHECKING:
    from sweepherd.monitor import SlurmPanel
    from sweepherd.store import Snapshot, SweepStore


@click.command()
@sweep_argument
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--all", "show_all", is_flag=True, help="List every run (default: the last 30).")
def status(sweep: str, root: Path, as_json: bool, show_all: bool) -> None:
    """Show SWEEP's progress, counts by state, and its runs."""
    from rich.console import Console
    from rich.text import Text

    from sweepherd.monitor import (
        failures_text,
        n_alive,
        progress,
        progress_text,
        run_as_dict,
        runs_table,
        slurm_view,
        stalled_note,
        sweep_state,
    )
    from sweepherd.search import done_reason
    from sweepherd.store import open_sweep
    from sweepherd.wandb import describe

    store = open_sweep(sweep, root)
    snap = store.snapshot()
    runs = list(snap.runs.values())
    config = store.config
    prog = progress(config, runs)
    jobs = _slurm_jobs(snap)
    ended_by = None if snap.cancelled else done_reason(config, runs)  # run_cap, target
    wandb_note = describe(store)  # a `--backend wandb` sweep: its runs are on W&B
    alive = n_alive(store.heartbeats(), time.time())
    stalled = stalled_note(
        sweep_state(config, runs, snap.cancelled),
        prog.n_running,
        None if wandb_note else alive,  # W&B's own agents write no heartbeats
        (row.state for row in jobs.rows),
        str(store.path),
    )
    live = _live_values(store, runs)
    if as_json:
        doc = {
            "id": store.sweep_id,
            "name": config.name,
            "path": str(store.path),
            "method": config.method,
            "metric": None if config.metric is None else config.metric.name,
            "goal": None if config.metric is None else config.metric.goal,
            "cancelled": snap.cancelled,
            "expected_runs": prog.expected,
            "counts": {state.value: n for state, n in prog.counts.items()},
            "runs": [
                {**run_as_dict(r), **({"live_metric": live[r.id]} if r.id in live else {})}
                for r in runs
            ],
            "slurm_jobs": [dataclasses.asdict(row) for row in jobs.rows],
            "slurm_note": jobs.note,
            "done_reason": ended_by,
            "agents_alive": alive,
            "stalled": stalled,
        }
        click.echo(json.dumps(doc, indent=2))
        return
    console = Console()
    title = f"sweep {store.sweep_id}"
    if config.name:
        title += f" ({config.name})"
    metric = f", {config.metric.goal} {config.metric.name}" if config.metric else ""
    console.print(
        Text.assemble((title, "bold"), f": {config.method}{metric} — {store.path}"),
        highlight=False,
    )
    if snap.cancelled:
        console.print("cancelled", style="yellow")
    if wandb_note:
        console.print(wandb_note, highlight=False, markup=False)
    console.print(progress_text(config, prog, runs))
    if ended_by:
        console.print(f"no new run starts: {ended_by}", style="green", highlight=False)
    if stalled:
        console.print(stalled, style="bold yellow", highlight=False, markup=False)
    if not runs:
        console.print("no runs yet", style="dim")
    else:
        shown = runs if show_all else runs[-30:]
        if len(shown) < len(runs):
            console.print(
                f"(last {len(shown)} of {len(runs)} runs; --all shows every run)", style="dim"
            )
        console.print(runs_table(config, shown, live=live))
        console.print(failures_text(runs), end="")  # why runs failed or are not run again
    if jobs.rows or snap.jobs:  # pending jobs too: why no run has started yet
        console.print(slurm_view(jobs))


def _live_values(store: SweepStore, runs: list[Run]) -> dict[str, float]:
    """The metric each running run has logged last, as its agent's live file says."""
    from sweepherd.live_metric import read_running

    metric = store.config.metric
    if metric is None:
        return {}
    views = read_running(runs, store.run_path, metric.name)
    return {run_id: value for run_id, live in views.items() if (value := live.latest) is not None}


def _slurm_jobs(snap: Snapshot) -> SlurmPanel:
    """The sweep's Slurm jobs joined with its runs; a note instead when Slurm cannot tell."""
    from sweepherd.launch.slurm import squeue_jobs, sweep_jobs
    from sweepherd.monitor import read_slurm, slurm_panel

    reader = functools.partial(sweep_jobs, query=functools.partial(squeue_jobs, timeout_s=10.0))
    return slurm_panel(snap, read_slurm(snap, reader))
