"""Rendering a :class:`WatchModel`: a Rich view for terminals, plain lines for everything else.

Pure functions of the model: no file, no clock, no terminal. The Rich view fits an 80-column
terminal (ids and numbers are never wrapped; parameters and stderr lines are cut with an
ellipsis) and bounds its height (``max_running`` rows of runs in flight, then a count).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from sweepherd.monitor._model import Failure, InFlight, WatchModel
from sweepherd.monitor._render import STATE_STYLE, PlainTable, fmt, fmt_duration, fmt_params
from sweepherd.monitor._slurm import SlurmPanel
from sweepherd.runs import Run, RunState

SWEEP_STATE_STYLE = {
    "empty": "dim",
    "running": "bold cyan",
    "paused": "yellow",
    "done": "bold green",
    "cancelled": "yellow",
    "wandb": "blue",
}


# -- pieces shared by both forms ----------------------------------------------------------------


def title(model: WatchModel) -> str:
    """``sweep abc123 (my-name): grid, minimize val_loss``."""
    text = f"sweep {model.sweep_id}"
    if model.name and model.name != model.sweep_id:
        text += f" ({model.name})"
    text += f": {model.method}"
    if model.metric:
        text += f", {model.goal} {model.metric}"
    return text


def done_text(model: WatchModel) -> str:
    """``12/40 runs done (30%)``, or ``12 runs done`` when the total is unknown."""
    prog = model.progress
    if prog.expected:
        pct = 100.0 * (prog.fraction or 0.0)
        return f"{prog.n_settled}/{prog.expected} runs done ({pct:.0f}%)"
    return f"{prog.n_settled} runs done (no fixed total)"


def rate_text(model: WatchModel) -> str:
    """``1.2 runs/min · ETA 23m04s`` (the parts that are known)."""
    parts = []
    if model.runs_per_min is not None:
        parts.append(f"{model.runs_per_min:.3g} runs/min")
    if model.eta_s is not None and model.state == "running":
        parts.append(f"ETA {fmt_duration(model.eta_s)}")
    if model.n_agents_alive is not None:
        n = model.n_agents_alive
        parts.append(f"{n} agent{'' if n == 1 else 's'} alive")
    return " · ".join(parts)


def counts_text(model: WatchModel) -> str:
    """``4 running, 10 finished, 2 failed`` (states with runs only)."""
    parts = [f"{n} {label}" for label, n in model.progress.shown]
    return ", ".join(parts) if parts else "no runs yet"


def _where(node: str | None, gpus: str | None) -> str:
    where = node or "-"
    return f"{where}:{gpus}" if gpus else where


# -- the Rich view --------------------------------------------------------------------------------


def render_watch(
    model: WatchModel, *, max_running: int = 8, max_jobs: int = 6, show_params: bool = True
) -> RenderableType:
    """The whole live view as one Rich renderable."""
    parts: list[RenderableType] = [_header(model)]
    if model.note:
        parts.append(Text(model.note, style="yellow"))
    if model.stalled:
        parts.append(Text(model.stalled, style="bold yellow"))
    parts += [_bar(model), _counts(model)]
    if model.running:
        parts += [Text(), _running_table(model, max_running)]
    if model.best:
        parts += [Text(), _best_table(model, show_params)]
    if model.failures:
        parts += [Text(), _failures(model)]
    parts += [Text(), _slurm(model, max_jobs)]
    return Group(*parts)


def _header(model: WatchModel) -> Table:
    grid = PlainTable.grid(expand=True)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    grid.add_column(justify="right", no_wrap=True)
    grid.add_row(
        Text(title(model), style="bold"),
        Text(model.state, style=SWEEP_STATE_STYLE.get(model.state, "")),
    )
    return grid


def _bar(model: WatchModel) -> RenderableType:
    prog = model.progress
    if not prog.expected:
        return Text(done_text(model))
    grid = PlainTable.grid(expand=True, padding=(0, 1))
    grid.add_column(ratio=1)
    grid.add_column(justify="right", no_wrap=True)
    pct = 100.0 * (prog.fraction or 0.0)
    grid.add_row(
        ProgressBar(
            total=float(prog.expected), completed=float(min(prog.n_settled, prog.expected))
        ),
        f"{prog.n_settled}/{prog.expected} done {pct:3.0f}%",
    )
    return grid


def _counts(model: WatchModel) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    first = True
    for state, n in model.progress.counts.items():
        if n:
            text.append(("" if first else "  ") + f"{n} {state.value}", style=STATE_STYLE[state])
            first = False
    if first:
        text.append("no runs yet", style="dim")
    rate = rate_text(model)
    if rate:
        text.append(f"  · {rate}", style="dim")
    return text


def _table(title: str) -> Table:
    return PlainTable(
        title=title,
        title_justify="left",
        title_style="bold",
        box=None,
        pad_edge=False,
        header_style="dim",
        padding=(0, 1),
    )


def _running_table(model: WatchModel, max_rows: int) -> RenderableType:
    metric = model.metric or "metric"
    table = _table(f"running ({len(model.running)})")
    table.add_column("run", no_wrap=True)
    table.add_column("node:gpu", no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("try", justify="right", no_wrap=True)
    table.add_column("elapsed", justify="right", no_wrap=True)
    table.add_column(metric, justify="right", no_wrap=True, overflow="ellipsis", max_width=14)
    table.add_column("steps", justify="right", no_wrap=True)
    shown: Sequence[InFlight] = model.running[:max_rows]
    for row in shown:
        where = _where(row.node, row.gpus)
        style = ""
        if row.agent_silent_s is not None:
            where = f"{where} silent {fmt_duration(row.agent_silent_s)}"
            style = "red"
        table.add_row(
            row.run_id,
            where,
            str(row.attempt),
            fmt_duration(row.elapsed_s),
            fmt(row.latest),
            str(row.n_logged),
            style=style,
        )
    if len(model.running) > len(shown):
        more = Text(f"… and {len(model.running) - len(shown)} more running", style="dim")
        return Group(table, more)
    return table


def _best_table(model: WatchModel, show_params: bool) -> Table:
    metric = model.metric or "metric"
    table = _table(f"best by {metric} ({model.goal})")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("run", no_wrap=True)
    table.add_column(metric, justify="right", no_wrap=True, max_width=14)
    if show_params:
        table.add_column("params", no_wrap=True, overflow="ellipsis", ratio=1)
    for i, run in enumerate(model.best, 1):
        cells = [str(i), run.id, fmt(run.metric, 6)]
        if show_params:
            cells.append(fmt_params(run.params, 200))
        table.add_row(*cells)
    return table


def failure_headline(failure: Failure) -> str:
    """``abc-0005 failed (exit 3) on node1: exited with status 3``."""
    text = f"{failure.run_id} failed"
    if failure.exit_code is not None:
        text += f" (exit {failure.exit_code})"
    if failure.node:
        text += f" on {failure.node}"
    if failure.reason:
        text += f": {failure.reason}"
    return text


def _failures(model: WatchModel) -> Group:
    lines: list[RenderableType] = [Text(f"failed ({model.n_failed})", style="bold red")]
    for failure in model.failures:
        lines.append(
            Text(failure_headline(failure), style="red", no_wrap=True, overflow="ellipsis")
        )
        for line in failure.stderr_tail:
            lines.append(Text(f"  │ {line}", style="dim", no_wrap=True, overflow="ellipsis"))
    if model.n_failed > len(model.failures):
        more = model.n_failed - len(model.failures)
        lines.append(Text(f"… and {more} more failed runs (sweepherd status)", style="dim"))
    return Group(*lines)


def _slurm(model: WatchModel, max_jobs: int) -> RenderableType:
    return slurm_view(model.slurm, max_jobs)


def slurm_view(panel: SlurmPanel, max_jobs: int = 20) -> RenderableType:
    """The sweep's Slurm jobs: state (with requeues), nodes, runs in flight, reason."""
    heading = Text("slurm jobs", style="bold")
    if not panel.rows:
        return Group(heading, Text(panel.note or "no Slurm jobs", style="dim"))
    table = _table("slurm jobs")
    table.add_column("job", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("nodes", no_wrap=True, overflow="ellipsis", max_width=24)
    table.add_column("runs", justify="right", no_wrap=True)
    table.add_column("reason", no_wrap=True, overflow="ellipsis", ratio=1)
    for row in panel.rows[:max_jobs]:
        state = row.state + (f" (requeued {row.restarts}x)" if row.restarts else "")
        table.add_row(
            row.job_id,
            Text(state, style=_job_style(row.state)),
            row.nodes or "-",
            str(row.n_running),
            row.reason if row.reason and row.reason != "None" else "",
        )
    parts: list[RenderableType] = [table]
    if len(panel.rows) > max_jobs:
        parts.append(Text(f"… and {len(panel.rows) - max_jobs} more jobs", style="dim"))
    if panel.note:
        parts.append(Text(panel.note, style="dim", no_wrap=True, overflow="ellipsis"))
    return Group(*parts)


def _job_style(state: str) -> str:
    return {
        "RUNNING": "cyan",
        "PENDING": "yellow",
        "COMPLETED": "green",
        "FAILED": "red",
        "TIMEOUT": "red",
        "CANCELLED": "dim",
        "?": "dim",
        "ENDED": "dim",
    }.get(state.split(" ", maxsplit=1)[0], "")


# -- plain lines ----------------------------------------------------------------------------------


def status_line(model: WatchModel) -> str:
    """The one-line summary printed when stdout is not a terminal."""
    parts = [f"{title(model)} [{model.state}]", done_text(model), counts_text(model)]
    if model.best and model.metric:
        best = model.best[0]
        parts.append(f"best {model.metric} {fmt(best.metric, 6)} ({best.id})")
    rate = rate_text(model)
    if rate:
        parts.append(rate)
    return " · ".join(parts)


def ended_lines(model: WatchModel) -> list[str]:
    """One line per run that ended since the previous frame (with its stderr if it failed)."""
    failures = {f.run_id: f for f in model.failures}
    lines = []
    for run in model.ended:
        lines.append(_ended_line(model, run))
        failure = failures.get(run.id)
        if run.state is RunState.FAILED and failure is not None:
            lines += [f"  stderr: {line}" for line in failure.stderr_tail]
    return lines


def _ended_line(model: WatchModel, run: Run) -> str:
    text = f"{run.id} {run.state.value}"
    if run.metric is not None and model.metric:
        text += f" {model.metric}={fmt(run.metric, 6)}"
    if run.exit_code is not None and run.state is not RunState.FINISHED:
        text += f" (exit {run.exit_code})"
    if run.duration_s is not None:
        text += f" in {fmt_duration(run.duration_s)}"
    if run.node:
        text += f" on {run.node}"
    if run.reason and run.state is not RunState.FINISHED:
        text += f": {run.reason}"
    return text


def plain_report(model: WatchModel, *, max_running: int = 50) -> list[str]:
    """The whole view as plain lines (``watch --once`` when stdout is not a terminal)."""
    lines = [f"{title(model)} [{model.state}]"]
    if model.note:
        lines.append(f"note: {model.note}")
    if model.stalled:
        lines.append(f"stalled: {model.stalled}")
    lines.append(f"progress: {done_text(model)}")
    rate = rate_text(model)
    if rate:
        lines[-1] += f" · {rate}"
    lines.append(f"states: {counts_text(model)}")
    for row in model.running[:max_running]:
        line = f"running: {row.run_id} on {_where(row.node, row.gpus)}, try {row.attempt}"
        line += f", {fmt_duration(row.elapsed_s)}"
        if model.metric:
            line += f", {model.metric} {fmt(row.latest)}"
        line += f" ({row.n_logged} steps)"
        if row.agent_silent_s is not None:
            line += f", agent silent {fmt_duration(row.agent_silent_s)}"
        lines.append(line)
    if len(model.running) > max_running:
        lines.append(f"running: … and {len(model.running) - max_running} more")
    for i, run in enumerate(model.best, 1):
        lines.append(
            f"best {i}: {run.id} {model.metric} {fmt(run.metric, 6)} {fmt_params(run.params, 200)}"
        )
    for failure in model.failures:
        lines.append(failure_headline(failure))
        lines += [f"  stderr: {line}" for line in failure.stderr_tail]
    if model.n_failed > len(model.failures):
        lines.append(f"… and {model.n_failed - len(model.failures)} more failed runs")
    panel = model.slurm
    for job in panel.rows:
        line = f"slurm: job {job.job_id} {job.state}"
        if job.nodes:
            line += f" on {job.nodes}"
        line += f", {job.n_running} runs running"
        if job.reason:
            line += f" ({job.reason})"
        lines.append(line)
    if panel.note:
        lines.append(f"slurm: {panel.note}")
    return lines
