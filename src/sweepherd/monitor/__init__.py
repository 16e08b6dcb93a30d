"""Read-only views of a sweep: progress, best runs, tables. Nothing here writes to the store."""

from sweepherd.monitor._live import ProgressView
from sweepherd.monitor._render import best_table, failures_text, progress_text, runs_table
from sweepherd.monitor._summary import (
    Progress,
    best_runs,
    count_states,
    expected_runs,
    grid_size,
    progress,
    run_as_dict,
    without_metric,
)

__all__ = [
    "Progress",
    "ProgressView",
    "best_runs",
    "best_table",
    "count_states",
    "expected_runs",
    "failures_text",
    "grid_size",
    "progress",
    "progress_text",
    "run_as_dict",
    "runs_table",
    "without_metric",
]
