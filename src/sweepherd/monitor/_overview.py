"""One line per sweep for ``sweepherd ls``: name, method, state, runs done, best value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

from sweepherd.errors import ConfigError, StoreError
from sweepherd.monitor._render import PlainTable, fmt
from sweepherd.monitor._summary import best_runs, progress, sweep_state
from sweepherd.store import SweepStore


@dataclass(frozen=True)
class SweepOverview:
    """A sweep at a glance."""

    sweep_id: str
    name: str | None
    method: str
    state: str  # sweep_state's; "wandb": runs on W&B's controller; "unreadable": see problem
    n_runs: int
    n_done: int  # runs ended for good (done, or given up)
    expected: int | None
    metric: str | None
    goal: str | None
    best: float | None
    best_run: str | None
    created_at: float | None
    problem: str | None = None  # why it is unreadable


def overview(store: SweepStore) -> SweepOverview:
    """Summarise one sweep (reads its config and journal once)."""
    created = store.meta.get("created_at")
    created_at = float(created) if isinstance(created, (int, float)) else None
    try:
        config = store.config
        snap = store.snapshot()
    except (StoreError, ConfigError) as exc:  # one bad sweep must not hide the others
        return SweepOverview(
            store.sweep_id,
            store.meta.get("name"),
            "?",
            "unreadable",
            0,
            0,
            None,
            None,
            None,
            None,
            None,
            created_at,
            problem=str(exc),
        )
    from sweepherd.wandb import is_wandb_backend

    runs = list(snap.runs.values())
    prog = progress(config, runs)
    best = best_runs(config, runs, 1)
    wandb = is_wandb_backend(store) and not snap.cancelled
    return SweepOverview(
        sweep_id=store.sweep_id,
        name=config.name,
        method=config.method,
        state="wandb" if wandb else sweep_state(config, runs, snap.cancelled),
        n_runs=len(runs),
        n_done=prog.n_settled,
        expected=prog.expected,
        metric=config.metric.name if config.metric else None,
        goal=config.metric.goal if config.metric else None,
        best=best[0].metric if best else None,
        best_run=best[0].id if best else None,
        created_at=created_at,
    )


def overview_table(rows: Sequence[SweepOverview]) -> Table:
    """The sweeps as a table that fits 80 columns."""
    from sweepherd.monitor._watch_view import SWEEP_STATE_STYLE

    table = PlainTable(box=None, pad_edge=False, header_style="bold")
    table.add_column("sweep", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=16)
    table.add_column("method", no_wrap=True, min_width=6)
    table.add_column("state", no_wrap=True, min_width=9)
    table.add_column("runs", justify="right", no_wrap=True, min_width=5)
    table.add_column("best", no_wrap=True, overflow="ellipsis", max_width=24)
    for row in rows:
        runs = f"{row.n_done}/{row.expected}" if row.expected else str(row.n_done)
        best = "-"
        if row.best is not None:
            best = f"{fmt(row.best, 5)} {row.metric}"
        elif row.metric is None and row.state != "unreadable":
            best = "(no metric)"
        table.add_row(
            row.sweep_id,
            row.name or "",
            row.method,
            Text(row.state, style=SWEEP_STATE_STYLE.get(row.state, "red")),
            runs,
            best,
        )
    return table
