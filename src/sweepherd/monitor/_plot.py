"""``sweepherd plot``: write a sweep's pictures as PNG files and, if asked, one HTML report.

The HTML report is a single self-contained file (the PNGs embedded as base64, no JavaScript,
no network), so it can be copied off a cluster and opened anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sweepherd.errors import SweepherdError
from sweepherd.monitor._figures import (
    BestSoFarPoint,
    best_so_far,
    best_so_far_figure,
    curves_figure,
    importance_figure,
    parallel_figure,
    require_matplotlib,
)
from sweepherd.monitor._history import MetricPoint, load_history
from sweepherd.monitor._importance import ImportanceResult, param_importance
from sweepherd.monitor._render import fmt, fmt_params
from sweepherd.monitor._summary import best_runs, progress
from sweepherd.runs import Run
from sweepherd.store import SweepStore

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The pictures, in the order of the report: file stem -> caption.
PICTURES: Mapping[str, str] = {
    "best_so_far": "Best so far: each run's metric in the order runs ended, and the best up to it.",
    "parallel_coordinates": "Parameters against the metric: one line per run, bright = better.",
    "metric_curves": "The metric over steps, per run (from the logged history).",
    "importance": "Parameter importance, with each numeric parameter's rank correlation.",
}


@dataclass(frozen=True)
class PlotReport:
    """What :func:`write_plots` wrote, and the data behind the pictures."""

    pngs: Mapping[str, Path]  # picture name -> file
    html: Path | None
    best_so_far: tuple[BestSoFarPoint, ...]
    importance: ImportanceResult
    n_histories: int  # runs with a logged history of the metric


def histories(store: SweepStore, runs: Sequence[Run], metric: str) -> dict[str, list[MetricPoint]]:
    """Each run's logged history of ``metric`` (runs that logged none are left out)."""
    out: dict[str, list[MetricPoint]] = {}
    for run in runs:
        points = load_history(store.runs_dir / run.id, run.id, metric)
        if points:
            out[run.id] = points
    return out


def sweep_figures(
    store: SweepStore, runs: Sequence[Run]
) -> tuple[dict[str, Figure], ImportanceResult, dict[str, list[MetricPoint]]]:
    """The four figures of a sweep, its importance result and the histories used."""
    require_matplotlib()
    config = store.config
    hist = histories(store, runs, config.metric.name) if config.metric else {}
    importance = param_importance(config, runs)
    metric = config.metric.name if config.metric else None
    figures = {
        "best_so_far": best_so_far_figure(config, runs),
        "parallel_coordinates": parallel_figure(config, runs),
        "metric_curves": curves_figure(config, runs, hist),
        "importance": importance_figure(importance, metric),
    }
    return figures, importance, hist


def write_plots(store: SweepStore, out_dir: Path, *, html_report: bool = False) -> PlotReport:
    """Write ``<name>.png`` for each picture into ``out_dir`` (and ``report.html``)."""
    runs = list(store.snapshot().runs.values())
    figures, importance, hist = sweep_figures(store, runs)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepherdError(f"Could not create {out_dir}: {exc.strerror or exc}.") from exc
    pngs: dict[str, Path] = {}
    images: dict[str, bytes] = {}
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        images[name] = buf.getvalue()
        path = out_dir / f"{name}.png"
        _write(path, images[name])
        pngs[name] = path
    report_path = None
    if html_report:
        report_path = out_dir / "report.html"
        _write(report_path, report_html(store, runs, images, importance).encode())
    return PlotReport(
        pngs, report_path, tuple(best_so_far(store.config, runs)), importance, len(hist)
    )


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise SweepherdError(f"Could not write {path}: {exc.strerror or exc}.") from exc


def report_html(
    store: SweepStore,
    runs: Sequence[Run],
    images: Mapping[str, bytes],
    importance: ImportanceResult,
) -> str:
    """A self-contained HTML page: summary, best runs, the pictures, the importance table."""
    config = store.config
    esc = html.escape
    prog = progress(config, runs)
    metric = config.metric.name if config.metric else None
    total = f"/{prog.expected}" if prog.expected else ""
    counts = ", ".join(f"{n} {s.value}" for s, n in prog.counts.items() if n) or "no runs"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>sweep {esc(store.sweep_id)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;"
        "padding:0 1em;color:#222}table{border-collapse:collapse;font-size:14px}"
        "td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}"
        "figcaption{color:#555;font-size:14px}</style></head><body>",
        f"<h1>sweep {esc(store.sweep_id)}{f' ({esc(config.name)})' if config.name else ''}</h1>",
        f"<p>{esc(config.method)} search"
        + (f", {esc(config.metric.goal)} <b>{esc(metric or '')}</b>" if config.metric else "")
        + f" · {prog.n_settled}{total} runs done ({esc(counts)}) · "
        f"generated {esc(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>",
    ]
    best = best_runs(config, runs, 10)
    if best:
        parts.append(
            "<h2>best runs</h2><table><tr><th>#</th><th>run</th>"
            f"<th>{esc(metric or '')}</th><th>params</th></tr>"
        )
        for i, run in enumerate(best, 1):
            parts.append(
                f"<tr><td class=n>{i}</td><td>{esc(run.id)}</td>"
                f"<td class=n>{esc(fmt(run.metric, 6))}</td>"
                f"<td>{esc(fmt_params(run.params, 400))}</td></tr>"
            )
        parts.append("</table>")
    for name, caption in PICTURES.items():
        data = base64.b64encode(images[name]).decode("ascii")
        parts.append(
            f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    parts.append("<h2>parameter importance</h2>")
    if importance.method is None:
        parts.append(f"<p>Not computed: {esc(importance.note or '')}.</p>")
    else:
        parts.append(
            f"<p>Method: {esc(importance.method)}, over {importance.n_runs} runs.</p>"
            "<table><tr><th>parameter</th><th>importance</th><th>rank correlation</th></tr>"
        )
        for p in importance.params:
            rho = "-" if p.correlation is None else f"{p.correlation:+.3f}"
            parts.append(
                f"<tr><td>{esc(p.name)}</td><td class=n>{p.importance:.3f}</td>"
                f"<td class=n>{rho}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
