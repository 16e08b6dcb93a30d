"""Everything sweepherd does with Weights & Biases, without a W&B server.

- :func:`write_param_file`: the run's parameters in the file ``wandb.init()`` reads through
  ``WANDB_SWEEP_PARAM_PATH`` (needs only PyYAML);
- :class:`TransactionLogReader`, :class:`RunLogReader`, :func:`find_run_logs`: read a run's
  ``run-<id>.wandb`` transaction log incrementally while the run writes it;
- :class:`MetricTracker`: a run's history and summary folded from those events;
  :func:`transaction_log_source`: the same as a metric source for the agent;
- :func:`plan_sync`, :func:`sync`: upload ended runs with ``wandb sync``, once each.

The ``wandb`` package is optional: it is imported only when a transaction log is decoded, and
its absence raises :class:`~sweepherd.errors.WandbError` with an install hint.
"""

from sweepherd.wandb._paramfile import param_file_text, write_param_file
from sweepherd.wandb._sync import (
    MARKER_NAME,
    SYNC_STATES,
    SyncItem,
    SyncPlan,
    SyncReport,
    plan_runs,
    plan_sync,
    read_marker,
    sync,
    sync_item,
    wandb_sync_argv,
)
from sweepherd.wandb._tracker import (
    MetricRow,
    MetricTracker,
    TransactionLogSource,
    is_finite_number,
    transaction_log_source,
)
from sweepherd.wandb._txlog import (
    BLOCK_SIZE,
    ConfigUpdate,
    Event,
    HistoryRow,
    Preempting,
    RunExited,
    RunLogReader,
    RunStarted,
    SummaryUpdate,
    TransactionLogReader,
    decode_record,
    find_run_logs,
)

__all__ = [
    "BLOCK_SIZE",
    "MARKER_NAME",
    "SYNC_STATES",
    "ConfigUpdate",
    "Event",
    "HistoryRow",
    "MetricRow",
    "MetricTracker",
    "Preempting",
    "RunExited",
    "RunLogReader",
    "RunStarted",
    "SummaryUpdate",
    "SyncItem",
    "SyncPlan",
    "SyncReport",
    "TransactionLogReader",
    "TransactionLogSource",
    "decode_record",
    "find_run_logs",
    "is_finite_number",
    "param_file_text",
    "plan_runs",
    "plan_sync",
    "read_marker",
    "sync",
    "sync_item",
    "transaction_log_source",
    "wandb_sync_argv",
    "write_param_file",
]
