"""What the agent reads and writes in a run's folder, apart from the trial itself.

The parameter files the trial reads, the sources its metrics are read from, the record of the
wandb logs an attempt wrote (so a sync can leave out the attempts after a run's result), the
checkpoint folder that says whether a run resumes, and the last line of its stderr for a
failure's reason.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sweepherd.agent._metrics import JsonlSource, MetricSource
from sweepherd.agent._trial import Trial
from sweepherd.runs import Run

#: The folder of a run's folder that stays the same across attempts ($SWEEPHERD_CHECKPOINT_DIR).
CHECKPOINT_DIR = "checkpoints"

log = logging.getLogger("sweepherd.agent")


def default_metric_sources(run: Run, run_dir: Path) -> list[MetricSource]:
    """``metrics.jsonl`` always; the wandb transaction log when the wandb package is present."""
    sources: list[MetricSource] = [JsonlSource(run_dir / "metrics.jsonl")]
    try:
        from sweepherd.wandb import transaction_log_source
    except ImportError:
        return sources
    source = transaction_log_source(run_dir, run.id)
    if source is not None:
        sources.append(source)
    return sources


def wandb_logs(run_dir: Path, run_id: str) -> list[Path]:
    """The run's wandb transaction logs so far (none when sweepherd.wandb cannot load)."""
    try:
        from sweepherd.wandb import find_run_logs
    except ImportError:
        return []
    return find_run_logs(run_dir, run_id)


def record_attempt(trial: Trial, run_dir: Path) -> None:
    """Write which wandb logs this attempt wrote (``sweepherd.wandb.record_attempt_logs``):
    those that appeared while it ran and were started on this machine after it was, by its
    process (with W&B's default command the trial's process is the one wandb runs in). Never
    raises (it runs in the agent's loop as each trial ends): without the record, the attempt's
    logs are uploaded like any other attempt's."""
    try:
        from sweepherd.wandb import logs_started_here, record_attempt_logs

        new = [p for p in wandb_logs(run_dir, trial.run.id) if p not in trial.logs_at_start]
        own = logs_started_here(new, since=trial.spawned_at, pid=trial.pid)
        written = record_attempt_logs(run_dir, trial.run.attempt, own)
    except Exception as exc:
        log.warning("run %s: could not record its attempt's wandb logs: %s", trial.run.id, exc)
        return
    if not written:
        log.warning("run %s: could not write its attempt record in %s", trial.run.id, run_dir)


def write_params(path: Path, params: Any) -> None:
    """The run's parameters in W&B's parameter-file form (what ``WANDB_SWEEP_PARAM_PATH`` names)."""
    from sweepherd.wandb import write_param_file

    write_param_file(path, params)


def last_line(path: Path, max_bytes: int = 4096) -> str | None:
    """The last non-empty line of a log file, for a failure's one-line reason."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        # Skip sweepherd's attempt banners and wandb's own closing lines ("wandb: ...").
        if line.strip() and not line.startswith(("--- sweepherd:", "wandb:")):
            return line.strip()[:300]
    return None


def keeps_checkpoint(run_dir: Path) -> bool:
    """Whether the run wrote anything into its ``$SWEEPHERD_CHECKPOINT_DIR`` (so a resume goes
    on from there rather than starting over)."""
    try:
        return any((run_dir / CHECKPOINT_DIR).iterdir())
    except OSError:
        return False
