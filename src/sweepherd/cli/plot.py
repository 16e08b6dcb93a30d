"""``sweepherd plot SWEEP``: pictures of a sweep, as PNG files or one HTML report."""

from __future__ import annotations

from pathlib import Path

import click

from sweepherd.cli._common import sweep_argument


@click.command()
@sweep_argument
@click.option(
    "-o",
    "--output",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write into (default: ./SWEEP_ID-plots).",
)
@click.option(
    "--html", "html_report", is_flag=True, help="Also write report.html (self-contained)."
)
def plot(sweep: str, root: Path, out_dir: Path | None, html_report: bool) -> None:
    """Plot SWEEP: best so far over runs, parallel coordinates of parameters against the
    metric, the metric's curve per run, and parameter importance.

    Writes best_so_far.png, parallel_coordinates.png, metric_curves.png and importance.png;
    with --html also report.html, one file with every picture and the best runs in it.
    Importance is a random forest's when scikit-learn is installed, else the variance each
    parameter explains alone; the pictures say which.
    """
    from sweepherd.monitor import write_plots
    from sweepherd.store import open_sweep

    store = open_sweep(sweep, root)
    target = out_dir or Path(f"{store.sweep_id}-plots")
    report = write_plots(store, target, html_report=html_report)
    for path in report.pngs.values():
        click.echo(str(path))
    if report.html is not None:
        click.echo(str(report.html))
    if report.importance.method is None and report.importance.note:
        click.echo(f"parameter importance not computed: {report.importance.note}", err=True)
