"""Read-only views of a sweep: progress, the live view, best runs, exports, plots, logs.

Nothing here writes to the store. The live view is split in three: :class:`WatchCollector`
gathers a :class:`WatchModel` from the sweep directory (reading only what changed),
:func:`render_watch` / :func:`plain_report` turn a model into text (pure), and :func:`watch`
is the loop that draws frames.
"""

from sweepherd.monitor._collect import WatchCollector
from sweepherd.monitor._export import (
    FORMATS,
    ExportTable,
    export_table,
    write_csv,
    write_json,
    write_parquet,
)
from sweepherd.monitor._figures import (
    BestSoFarPoint,
    ParallelAxis,
    best_so_far,
    best_so_far_figure,
    curves_figure,
    importance_figure,
    parallel_axes,
    parallel_figure,
)
from sweepherd.monitor._follow import (
    ChangeWatcher,
    FileFollower,
    IoStats,
    JsonLinesFollower,
    tail_lines,
)
from sweepherd.monitor._history import MetricPoint, RunMetricFollower, load_history
from sweepherd.monitor._importance import ImportanceResult, ParamImportance, param_importance
from sweepherd.monitor._live import ProgressView
from sweepherd.monitor._logs import attempt_slice, follow_log, log_path, resolve_run
from sweepherd.monitor._model import Failure, InFlight, WatchModel
from sweepherd.monitor._overview import SweepOverview, overview, overview_table
from sweepherd.monitor._plot import PICTURES, PlotReport, report_html, sweep_figures, write_plots
from sweepherd.monitor._render import best_table, failures_text, progress_text, runs_table
from sweepherd.monitor._slurm import (
    JobsReader,
    SlurmJobRow,
    SlurmPanel,
    SlurmReading,
    read_slurm,
    slurm_panel,
)
from sweepherd.monitor._stalled import n_alive, stalled_note
from sweepherd.monitor._summary import (
    SWEEP_STATES,
    Progress,
    best_runs,
    count_states,
    eta_s,
    expected_runs,
    failed_runs,
    progress,
    run_as_dict,
    state_label,
    sweep_state,
    throughput_per_min,
    why_failed,
    without_metric,
)
from sweepherd.monitor._watch import MIN_INTERVAL_S, ViewLimits, WatchResult, watch
from sweepherd.monitor._watch_view import (
    ended_lines,
    plain_report,
    render_watch,
    slurm_view,
    status_line,
)

__all__ = [
    "FORMATS",
    "MIN_INTERVAL_S",
    "PICTURES",
    "SWEEP_STATES",
    "BestSoFarPoint",
    "ChangeWatcher",
    "ExportTable",
    "Failure",
    "FileFollower",
    "ImportanceResult",
    "InFlight",
    "IoStats",
    "JobsReader",
    "JsonLinesFollower",
    "MetricPoint",
    "ParallelAxis",
    "ParamImportance",
    "PlotReport",
    "Progress",
    "ProgressView",
    "RunMetricFollower",
    "SlurmJobRow",
    "SlurmPanel",
    "SlurmReading",
    "SweepOverview",
    "ViewLimits",
    "WatchCollector",
    "WatchModel",
    "WatchResult",
    "attempt_slice",
    "best_runs",
    "best_so_far",
    "best_so_far_figure",
    "best_table",
    "count_states",
    "curves_figure",
    "ended_lines",
    "eta_s",
    "expected_runs",
    "export_table",
    "failed_runs",
    "failures_text",
    "follow_log",
    "importance_figure",
    "load_history",
    "log_path",
    "n_alive",
    "overview",
    "overview_table",
    "parallel_axes",
    "parallel_figure",
    "param_importance",
    "plain_report",
    "progress",
    "progress_text",
    "read_slurm",
    "render_watch",
    "report_html",
    "resolve_run",
    "run_as_dict",
    "runs_table",
    "slurm_panel",
    "slurm_view",
    "stalled_note",
    "state_label",
    "status_line",
    "sweep_figures",
    "sweep_state",
    "tail_lines",
    "throughput_per_min",
    "watch",
    "why_failed",
    "without_metric",
    "write_csv",
    "write_json",
    "write_parquet",
    "write_plots",
]
