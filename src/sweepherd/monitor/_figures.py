"""The sweep's pictures as matplotlib figures, built from data only (no pyplot, no files).

Each ``*_figure`` function takes plain data and returns a :class:`matplotlib.figure.Figure`
drawn by the Agg renderer, so the same code works on a login node without a display, in
tests, and in threads. The data each figure shows is computed by a pure function next to it
(:func:`best_so_far`, :func:`parallel_axes`) that tests can compare with the figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweepherd._extras import install_extra_hint
from sweepherd.config import SweepConfig, flatten
from sweepherd.errors import SweepherdError
from sweepherd.monitor._history import MetricPoint
from sweepherd.monitor._importance import ImportanceResult
from sweepherd.runs import Run, RunState

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_LOG_DISTRIBUTIONS = frozenset(
    {"log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values", "log_normal"}
)
#: At most this many runs get a curve (the best ones).
MAX_CURVES = 40


def require_matplotlib() -> None:
    """Raise a clear error when matplotlib (the ``plot`` extra) is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise SweepherdError(
            "Plotting needs the matplotlib package, which is not installed.",
            hint=install_extra_hint("plot"),
        ) from exc


def _figure(width_in: float = 8.0, height_in: float = 4.5) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _empty(fig: Figure, message: str) -> Figure:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="0.4")
    return fig


def _scored(runs: Sequence[Run]) -> list[Run]:
    return [
        r for r in runs if r.state in (RunState.FINISHED, RunState.STOPPED) and r.metric is not None
    ]


# -- best so far ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BestSoFarPoint:
    """The n-th run to end with a metric, its value, and the best value up to it."""

    n: int
    run_id: str
    value: float
    best: float


def best_so_far(config: SweepConfig, runs: Sequence[Run]) -> list[BestSoFarPoint]:
    """The runs with a metric in the order they ended, with the best value so far."""
    if config.metric is None:
        return []
    ordered = sorted(_scored(runs), key=lambda r: (r.ended_at or math.inf, r.seq))
    points: list[BestSoFarPoint] = []
    best: float | None = None
    for i, run in enumerate(ordered, 1):
        value = float(run.metric or 0.0)
        if best is None or config.metric.better(value, best):
            best = value
        points.append(BestSoFarPoint(i, run.id, value, best))
    return points


def best_so_far_figure(config: SweepConfig, runs: Sequence[Run], title: str = "") -> Figure:
    """Each run's metric (dots) and the best so far (a step line), in the order runs ended."""
    fig = _figure()
    points = best_so_far(config, runs)
    if config.metric is None or not points:
        return _empty(fig, "no run has reported the metric yet")
    ax = fig.add_subplot()
    xs = [p.n for p in points]
    ax.scatter(xs, [p.value for p in points], s=18, color="0.6", label="run", zorder=2)
    ax.step(xs, [p.best for p in points], where="post", color="C0", lw=2.2, label="best so far")
    last = points[-1]
    best_run = next(p for p in points if p.value == last.best)
    ax.annotate(
        f"{best_run.run_id}: {last.best:.5g}",
        (best_run.n, last.best),
        textcoords="offset points",
        xytext=(6, 8),
        fontsize=9,
        color="C0",
    )
    ax.set_xlabel("runs ended")
    ax.xaxis.set_major_locator(_integer_locator())
    ax.set_ylabel(config.metric.name)
    ax.set_title(title or f"best {config.metric.name} so far ({config.metric.goal})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    return fig


# -- parallel coordinates ------------------------------------------------------------------------


@dataclass(frozen=True)
class ParallelAxis:
    """One vertical axis: a parameter (or the metric) and each run's position on it in [0, 1]."""

    name: str
    positions: tuple[float, ...]
    ticks: tuple[tuple[float, str], ...]  # (position, label)


def parallel_axes(config: SweepConfig, runs: Sequence[Run]) -> tuple[list[Run], list[ParallelAxis]]:
    """The runs with a metric and one axis per varying parameter, then the metric's axis."""
    scored = _scored(runs)
    if config.metric is None or not scored:
        return scored, []
    axes: list[ParallelAxis] = []
    for param in config.parameters:
        values = [flatten(r.params, [param]).get(param.path) for r in scored]
        if len({repr(v) for v in values}) < 2:
            continue
        log = param.distribution in _LOG_DISTRIBUTIONS
        axes.append(_axis(param.name, values, log))
    axes.append(_axis(config.metric.name, [r.metric for r in scored], False))
    return scored, axes


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _axis(name: str, values: Sequence[Any], log: bool) -> ParallelAxis:
    if all(_number(v) for v in values):
        use_log = log and all(v > 0 for v in values)
        xs = [math.log10(v) if use_log else float(v) for v in values]
        lo, hi = min(xs), max(xs)
        span = hi - lo or 1.0
        ticks = []
        for pos in (0.0, 0.5, 1.0):
            x = lo + pos * span
            ticks.append((pos, f"{10**x if use_log else x:.3g}"))
        return ParallelAxis(name, tuple((x - lo) / span for x in xs), tuple(ticks))
    labels = sorted({repr(v) if not isinstance(v, str) else v for v in values})
    k = max(len(labels) - 1, 1)
    where = {label: i / k for i, label in enumerate(labels)}
    positions = tuple(where[repr(v) if not isinstance(v, str) else v] for v in values)
    return ParallelAxis(name, positions, tuple((where[lb], lb[:12]) for lb in labels))


def parallel_figure(config: SweepConfig, runs: Sequence[Run]) -> Figure:
    """Parameters against the metric: one line per run, coloured by its metric (bright = good)."""
    scored, axes = parallel_axes(config, runs)
    fig = _figure(max(6.0, 1.6 * len(axes) + 2.0), 4.8)
    if config.metric is None or not axes:
        return _empty(fig, "no run has reported the metric yet")
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    ax = fig.add_subplot()
    metric_axis = axes[-1]
    goodness = [1.0 - p if config.metric.goal == "minimize" else p for p in metric_axis.positions]
    cmap = colormaps["viridis"]
    order = sorted(range(len(scored)), key=lambda i: goodness[i])  # best drawn last, on top
    xs = list(range(len(axes)))
    for i in order:
        ys = [a.positions[i] for a in axes]
        ax.plot(xs, ys, color=cmap(goodness[i]), lw=1.0 + 1.2 * goodness[i], alpha=0.8)
    for x, axis in enumerate(axes):
        ax.axvline(x, color="0.3", lw=0.8)
        for pos, label in axis.ticks:
            ax.text(x + 0.04, pos, label, fontsize=8, va="center", color="0.2")
    ax.set_xticks(xs, [a.name for a in axes], rotation=20, ha="right", fontsize=9)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(axes) - 0.4)
    ax.set_ylim(-0.05, 1.05)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    mappable = _scalar_mappable(cmap, Normalize(0.0, 1.0))
    bar = fig.colorbar(mappable, ax=ax, fraction=0.03, pad=0.02)
    bar.set_ticks([0.0, 1.0], labels=["worst", "best"])
    ax.set_title(f"parameters vs {config.metric.name} ({len(scored)} runs)")
    return fig


def _integer_locator() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _scalar_mappable(cmap: Any, norm: Any) -> Any:
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


# -- metric curves -------------------------------------------------------------------------------


def curves_figure(
    config: SweepConfig, runs: Sequence[Run], histories: Mapping[str, Sequence[MetricPoint]]
) -> Figure:
    """The metric over steps for each run that logged it (the best run drawn bold)."""
    fig = _figure()
    with_history = [r for r in runs if len(histories.get(r.id, ())) > 0]
    if config.metric is None or not with_history:
        return _empty(fig, "no run has logged a history of the metric")
    sign = -1.0 if config.metric.goal == "maximize" else 1.0
    ranked = sorted(
        with_history,
        key=lambda r: (r.metric is None, sign * (r.metric if r.metric is not None else 0.0), r.seq),
    )
    shown = ranked[:MAX_CURVES]
    ax = fig.add_subplot()
    for i, run in enumerate(reversed(shown)):
        points = histories[run.id]
        best = run is shown[0]
        ax.plot(
            [p.step for p in points],
            [p.value for p in points],
            lw=2.2 if best else 0.9,
            alpha=1.0 if best else 0.55,
            color="C3" if best else f"C{i % 10}",
            label=run.id if best else None,
            zorder=3 if best else 2,
        )
    ax.set_xlabel("step")
    ax.set_ylabel(config.metric.name)
    extra = f", best {MAX_CURVES} shown" if len(with_history) > MAX_CURVES else ""
    ax.set_title(f"{config.metric.name} per step ({len(with_history)} runs{extra})")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9, title="best run")
    return fig


# -- importance ----------------------------------------------------------------------------------


def importance_figure(result: ImportanceResult, metric: str | None) -> Figure:
    """A bar per parameter (most important on top), coloured by the sign of its correlation."""
    fig = _figure(7.0, max(2.5, 0.45 * len(result.params) + 1.5))
    if result.method is None or not result.params:
        return _empty(fig, f"parameter importance: {result.note or 'nothing to show'}")
    ax = fig.add_subplot()
    params = list(reversed(result.params))
    colors = [
        "0.55" if p.correlation is None else ("C3" if p.correlation > 0 else "C0") for p in params
    ]
    ax.barh([p.name for p in params], [p.importance for p in params], color=colors)
    for y, p in enumerate(params):
        label = f"{p.importance:.2f}"
        if p.correlation is not None:
            label += f"  (ρ {p.correlation:+.2f})"
        ax.text(p.importance, y, " " + label, va="center", fontsize=8)
    ax.set_xlim(0, max(p.importance for p in params) * 1.35 or 1.0)
    ax.set_xlabel("importance")
    ax.set_title(
        f"parameter importance for {metric} ({result.n_runs} runs)\n{result.method}", fontsize=10
    )
    return fig
