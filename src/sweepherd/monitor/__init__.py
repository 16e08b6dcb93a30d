"""Read-only views of a sweep: progress, the live view, best runs, exports, plots, logs.

Nothing here writes to the store. The live view is split in three: :class:`WatchCollector`
gathers a :class:`WatchModel` from the sweep directory (reading only what changed),
:func:`render_watch` / :func:`plain_report` turn a model into text (pure), and :func:`watch`
is the loop that draws frames.
"""

from sweepherd.monitor._collect import WatchCollector
from sweepherd.monitor._follow import FileFollower, IoStats, JsonLinesFollower, tail_lines
from sweepherd.monitor._history import MetricPoint, RunMetricFollower, load_history
from sweepherd.monitor._live import ProgressView
from sweepherd.monitor._model import Failure, InFlight, WatchModel
from sweepherd.monitor._render import best_table, failures_text, progress_text, runs_table
from sweepherd.monitor._slurm import (
    JobQuery,
    SlurmJobRow,
    SlurmPanel,
    SlurmReading,
    ask_slurm,
    join_jobs,
    slurm_panel,
    sweep_job_ids,
)
from sweepherd.monitor._summary import (
    SWEEP_STATES,
    Progress,
    best_runs,
    count_states,
    eta_s,
    expected_runs,
    grid_size,
    progress,
    run_as_dict,
    sweep_state,
    throughput_per_min,
    without_metric,
)
from sweepherd.monitor._watch import MIN_INTERVAL_S, ViewLimits, WatchResult, watch
from sweepherd.monitor._watch_view import ended_lines, plain_report, render_watch, status_line

__all__ = [
    "MIN_INTERVAL_S",
    "SWEEP_STATES",
    "Failure",
    "FileFollower",
    "InFlight",
    "IoStats",
    "JobQuery",
    "JsonLinesFollower",
    "MetricPoint",
    "Progress",
    "ProgressView",
    "RunMetricFollower",
    "SlurmJobRow",
    "SlurmPanel",
    "SlurmReading",
    "ViewLimits",
    "WatchCollector",
    "WatchModel",
    "WatchResult",
    "ask_slurm",
    "best_runs",
    "best_table",
    "count_states",
    "ended_lines",
    "eta_s",
    "expected_runs",
    "failures_text",
    "grid_size",
    "join_jobs",
    "load_history",
    "plain_report",
    "progress",
    "progress_text",
    "render_watch",
    "run_as_dict",
    "runs_table",
    "slurm_panel",
    "status_line",
    "sweep_job_ids",
    "sweep_state",
    "tail_lines",
    "throughput_per_min",
    "watch",
    "without_metric",
]
