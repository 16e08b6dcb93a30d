"""Everything sweepherd does with Weights & Biases, without a W&B server.

- :func:`write_param_file`: the run's parameters in the file ``wandb.init()`` reads through
  ``WANDB_SWEEP_PARAM_PATH`` (needs only PyYAML);
- :class:`TransactionLogReader`, :class:`RunLogReader`, :func:`find_run_logs`: read a run's
  ``run-<id>.wandb`` transaction log incrementally while the run writes it;
- :class:`MetricTracker`: a run's history and summary folded from those events;
  :func:`transaction_log_source`: the same as a metric source for the agent;
- :func:`open_transaction_logs`, :func:`adopt_logs`: a log the script wrote elsewhere
  (``wandb.init(dir=...)`` or ``id=...``), found open in its process and linked into the run's
  folder;
- :func:`plan_sync`, :func:`sync`: upload ended runs with ``wandb sync``, once each;
- ``--backend wandb``, W&B's own controller: :func:`create_backend_sweep` (``wandb.sweep``, the
  one call that needs the W&B server), :class:`LocalWandbAgents` (``wandb agent`` per GPU slot
  here) and :func:`submit_wandb` (the same as a Slurm job).

The ``wandb`` package is optional: it is imported only when a transaction log is decoded, and
its absence raises :class:`~sweepherd.errors.WandbError` with an install hint.
"""

from sweepherd.wandb._adopt import adopt_logs, open_transaction_logs
from sweepherd.wandb._attempts import (
    AttemptLogs,
    attempt_records,
    logs_started_here,
    record_attempt_logs,
)
from sweepherd.wandb._backend import (
    BACKEND,
    AgentsOutcome,
    LocalWandbAgents,
    WandbSweep,
    create_backend_sweep,
    create_wandb_sweep,
    describe,
    find_wandb_executable,
    gpu_slots,
    is_wandb_backend,
    runs_per_agent,
    wandb_agent_argv,
    wandb_on_path,
    wandb_place,
    wandb_sweep_config,
)
from sweepherd.wandb._backend_slurm import WandbSubmission, submit_wandb
from sweepherd.wandb._paramfile import param_file_text, write_param_file
from sweepherd.wandb._sync import (
    ALIVE_QUIET_S,
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
    run_record,
)

__all__ = [
    "ALIVE_QUIET_S",
    "BACKEND",
    "BLOCK_SIZE",
    "MARKER_NAME",
    "SYNC_STATES",
    "AgentsOutcome",
    "AttemptLogs",
    "ConfigUpdate",
    "Event",
    "HistoryRow",
    "LocalWandbAgents",
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
    "WandbSubmission",
    "WandbSweep",
    "adopt_logs",
    "attempt_records",
    "create_backend_sweep",
    "create_wandb_sweep",
    "decode_record",
    "describe",
    "find_run_logs",
    "find_wandb_executable",
    "gpu_slots",
    "is_finite_number",
    "is_wandb_backend",
    "logs_started_here",
    "open_transaction_logs",
    "param_file_text",
    "plan_runs",
    "plan_sync",
    "read_marker",
    "record_attempt_logs",
    "run_record",
    "runs_per_agent",
    "submit_wandb",
    "sync",
    "sync_item",
    "transaction_log_source",
    "wandb_agent_argv",
    "wandb_on_path",
    "wandb_place",
    "wandb_sweep_config",
    "wandb_sync_argv",
    "write_param_file",
]
