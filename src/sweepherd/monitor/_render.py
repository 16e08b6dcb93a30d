"""Rich renderings of a sweep: the progress line, the runs table, the best-runs table.

Pure functions from runs to Rich renderables; the caller owns the console. Tables fit an
80-column terminal: parameters are folded into one column and long values are cut.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from sweepherd.config import SweepConfig
from sweepherd.monitor._summary import (
    GIVEN_UP,
    Progress,
    best_runs,
    failed_runs,
    state_label,
    why_failed,
)
from sweepherd.runs import Run, RunState


class PlainTable(Table):
    """A Rich table that shows its text cells, headers and title as written.

    Parameter values, sweep and metric names are the user's text: ``lr=[1e-3]`` or a name like
    ``demo [v2]`` would be read as Rich markup by a plain :class:`Table` (and a stray closing
    tag such as ``[/b]`` raises). Strings become :class:`Text`; other renderables pass as they
    are, so styled cells keep their style.
    """

    def __init__(self, *headers: Any, title: Any = None, **options: Any) -> None:
        super().__init__(*map(_plain, headers), title=_plain(title), **options)

    def add_column(self, header: Any = "", *args: Any, **options: Any) -> None:
        super().add_column(_plain(header), *args, **options)

    def add_row(self, *renderables: Any, **options: Any) -> None:
        super().add_row(*map(_plain, renderables), **options)


def _plain(value: Any) -> Any:
    return Text(value) if isinstance(value, str) else value


STATE_STYLE: Mapping[RunState, str] = {
    RunState.RUNNING: "cyan",
    RunState.FINISHED: "green",
    RunState.FAILED: "red",
    RunState.STOPPED: "yellow",
    RunState.PREEMPTED: "magenta",
    RunState.LOST: "magenta",
    RunState.KILLED: "dim",
}


def label_style(label: str) -> str:
    """The style of a state as the views name it (:func:`state_label`)."""
    return "red" if label == GIVEN_UP else STATE_STYLE[RunState(label)]


def fmt(value: Any, digits: int = 5) -> str:
    """A compact value: floats to ``digits`` significant figures, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {fmt(v, digits)}" for k, v in value.items()) + "}"
    return str(value)


def fmt_params(params: Mapping[str, Any], width: int = 60) -> str:
    """``lr=0.01 bs=32 opt={name: adam}``, cut to ``width`` characters."""
    text = " ".join(f"{k}={fmt(v, 4)}" for k, v in params.items())
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def progress_text(config: SweepConfig, prog: Progress, runs: Sequence[Run]) -> Text:
    """One line: ``12/40 runs  4 running  10 finished  2 failed  best val_loss 0.123``."""
    text = Text()
    total = f"/{prog.expected}" if prog.expected else ""
    text.append(f"{prog.n_settled}{total} runs", style="bold")
    for label, n in prog.shown:
        text.append(f"  {n} {label}", style=label_style(label))
    best = best_runs(config, runs, 1)
    if best and config.metric is not None:
        text.append(f"  best {config.metric.name} {fmt(best[0].metric)}", style="bold green")
    return text


def runs_table(
    config: SweepConfig,
    runs: Sequence[Run],
    *,
    now: float | None = None,
    title: str | None = None,
    live: Mapping[str, float] | None = None,
) -> Table:
    """Every run: id, state, metric, node/GPU, attempt, time, parameters. ``live``: the metric
    running runs have logged so far, by run id (shown in the running style)."""
    now = time.time() if now is None else now
    metric = config.metric.name if config.metric else "metric"
    table = PlainTable(title=title, box=None, pad_edge=False, header_style="bold")
    table.add_column("run", no_wrap=True)
    table.add_column("state", no_wrap=True, min_width=9)
    table.add_column(metric, justify="right", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("node", no_wrap=True, overflow="ellipsis", max_width=16)
    with_jobs = any(run.job for run in runs)
    if with_jobs:
        table.add_column("job", no_wrap=True, overflow="ellipsis", max_width=12)
    table.add_column("try", justify="right")
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("params", overflow="fold")
    for run in runs:
        if run.ended_at is not None or run.started_at is None:
            elapsed = run.duration_s
        else:
            elapsed = now - run.started_at
        node = run.node or "-"
        if run.gpus:
            node += f":{run.gpus}"
        value: str | Text = fmt(run.metric)
        if run.metric is None and live is not None and run.id in live:
            value = Text(fmt(live[run.id]), style=STATE_STYLE[RunState.RUNNING])
        cells: list[str | Text] = [
            run.id,
            Text(state_label(run), style=label_style(state_label(run))),
            value,
            node,
        ]
        if with_jobs:
            cells.append(run.job or "-")
        cells += [str(run.attempt), fmt_duration(elapsed), fmt_params(run.params)]
        table.add_row(*cells)
    return table


def best_table(config: SweepConfig, runs: Sequence[Run], n: int = 5) -> Table:
    """The ``n`` best runs, best first."""
    metric = config.metric.name if config.metric else "metric"
    goal = config.metric.goal if config.metric else ""
    table = PlainTable(
        title=f"best {n} by {metric} ({goal})", box=None, pad_edge=False, header_style="bold"
    )
    table.add_column("#", justify="right")
    table.add_column("run", no_wrap=True)
    table.add_column(metric, justify="right", no_wrap=True, overflow="ellipsis", max_width=14)
    table.add_column("params", overflow="fold")
    for i, run in enumerate(best_runs(config, runs, n), 1):
        table.add_row(str(i), run.id, fmt(run.metric, 6), fmt_params(run.params, 200))
    return table


def failures_text(runs: Sequence[Run], limit: int = 3) -> Text:
    """The first failed runs (and runs given up) with their reasons, one line each."""
    text = Text()
    failed = failed_runs(runs)
    for run in failed[:limit]:
        text.append(f"{run.id} failed: {why_failed(run) or 'no reason recorded'}\n", style="red")
    if len(failed) > limit:
        text.append(f"... and {len(failed) - limit} more failed runs\n", style="red")
    return text
