"""``sweepherd export SWEEP``: every run as a row of CSV, JSON or Parquet, for pandas users."""

from __future__ import annotations

from pathlib import Path

import click

from sweepherd.cli._common import sweep_argument

_SUFFIXES = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


@click.command()
@sweep_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "parquet"]),
    default=None,
    help="Output format (default: from -o's suffix; csv to stdout).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: stdout; for parquet, SWEEP_ID.parquet).",
)
def export(sweep: str, root: Path, fmt: str | None, output: Path | None) -> None:
    """Export SWEEP's runs: id, state, metric, timings, node, GPUs, attempt, parameters
    (flattened: param.lr, param.opt.momentum) and summary values (summary.<key>).

    Ints stay ints and floats floats; missing values are empty (CSV) or null.

    \b
        sweepherd export abc123 -o runs.parquet
        pandas.read_parquet("runs.parquet")   # or read_csv / read_json
    """
    import sys

    from sweepherd.errors import SweepherdError
    from sweepherd.monitor import export_table, write_csv, write_json, write_parquet
    from sweepherd.store import open_sweep

    if fmt is None and output is None:
        fmt = "csv"
    elif fmt is None and output is not None:
        fmt = _SUFFIXES.get(output.suffix.lower())
        if fmt is None:
            raise click.BadParameter(
                f"cannot tell the format from {output.name!r}: name it .csv, .json or "
                ".parquet, or pass --format",
                param_hint="-o/--output",
            )
    store = open_sweep(sweep, root)
    table = export_table(store.config, store.snapshot().runs.values(), store.sweep_id)
    if fmt == "parquet":
        path = output or Path(f"{store.sweep_id}.parquet")
        write_parquet(table, path)
        click.echo(f"wrote {len(table.rows)} runs to {path}", err=True)
        return
    writer = write_csv if fmt == "csv" else write_json
    if output is None:
        writer(table, sys.stdout)
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as f:
            writer(table, f)
    except OSError as exc:
        raise SweepherdError(f"Could not write {output}: {exc.strerror or exc}.") from exc
    click.echo(f"wrote {len(table.rows)} runs to {output}", err=True)
