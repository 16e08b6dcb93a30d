"""``sweepherd watch SWEEP``: a live view of a sweep, redrawn in place."""

from __future__ import annotations

from pathlib import Path

import click

from sweepherd.cli._common import sweep_argument


@click.command()
@sweep_argument
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(min=0.5),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between two refreshes (at least 0.5).",
)
@click.option("--once", is_flag=True, help="Show one frame and exit.")
@click.option(
    "--slurm-every",
    "slurm_every_s",
    type=click.FloatRange(min=5.0),
    default=15.0,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between two squeue queries (squeue loads the Slurm controller).",
)
def watch(sweep: str, root: Path, interval_s: float, once: bool, slurm_every_s: float) -> int:
    """Watch SWEEP live: progress, runs in flight, best runs, failures, Slurm jobs.

    It reads only what changed since the previous refresh, so it is safe to leave open on a
    login node. It exits when the sweep is done or cancelled and nothing runs any more, or on
    Ctrl-C. When stdout is not a terminal it prints plain lines instead: one per run that
    ends, and the progress when it changes.
    """
    import functools

    from rich.console import Console

    from sweepherd.launch.slurm import squeue_jobs, sweep_jobs
    from sweepherd.monitor import WatchCollector
    from sweepherd.monitor import watch as run_watch
    from sweepherd.store import open_sweep

    store = open_sweep(sweep, root)
    collector = WatchCollector(
        store,
        slurm_jobs=functools.partial(
            sweep_jobs, query=functools.partial(squeue_jobs, timeout_s=10.0)
        ),
        slurm_every_s=slurm_every_s,
    )
    console = Console()
    result = run_watch(collector, console, interval_s=interval_s, once=once)
    if result.interrupted and not console.is_terminal:
        console.print("stopped watching", highlight=False)
    return 0
