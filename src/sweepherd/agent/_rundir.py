"""What the agent reads and writes in a run's folder, apart from the trial itself.

The parameter files the trial reads, the sources its metrics are read from, the wandb logs
its script wrote elsewhere (linked in), the record of the wandb logs an attempt wrote (so a
sync can leave out the attempts after a run's result), the checkpoint folder that says
whether a run resumes, and the last line of its stderr for a failure's reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweepherd.agent._metrics import JsonlSource, MetricSource
from sweepherd.agent._trial import Trial
from sweepherd.runs import Run

if TYPE_CHECKING:
    from sweepherd.wandb import AttemptLogs

#: The folder of a run's folder that stays the same across attempts ($SWEEPHERD_CHECKPOINT_DIR).
CHECKPOINT_DIR = "checkpoints"

log = logging.getLogger("sweepherd.agent")


def default_metric_sources(
    run: Run, run_dir: Path, attempt_logs: AttemptLogs | None = None
) -> list[MetricSource]:
    """``metrics.jsonl`` always; the wandb transaction logs when the wandb package is present
    (those ``attempt_logs`` accepts, when given)."""
    sources: list[MetricSource] = [JsonlSource(run_dir / "metrics.jsonl")]
    try:
        from sweepherd.wandb import transaction_log_source
    except ImportError:
        return sources
    source = transaction_log_source(run_dir, run.id, attempt_logs)
    if source is not None:
        sources.append(source)
    return sources


def attempt_log_filter(pid: int, logs_at_start: frozenset[Path]) -> AttemptLogs | None:
    """Which wandb logs are the attempt of trial process ``pid`` (``sweepherd.wandb.AttemptLogs``),
    or None when sweepherd.wandb cannot load."""
    try:
        from sweepherd.wandb import AttemptLogs
    except ImportError:
        return None
    return AttemptLogs(pid, logs_at_start)


def wandb_logs(run_dir: Path, run_id: str) -> list[Path]:
    """The run's wandb transaction logs so far (none when sweepherd.wandb cannot load)."""
    try:
        from sweepherd.wandb import find_run_logs
    except ImportError:
        return []
    return find_run_logs(run_dir, run_id)


#: How often a trial with no wandb log in its run folder is looked at for one written elsewhere:
#: often while it is young (``wandb.init`` comes early), then less (each look reads ``/proc``).
LOOK_EVERY_S = (1.0, 10.0)
LOOK_OFTEN_FOR_S = 30.0


def link_logs_written_elsewhere(trials: Sequence[Trial], now: float) -> None:
    """Link into their run folders the wandb logs that ``trials``' scripts write elsewhere
    (``wandb.init(dir=...)`` or ``id=...``; ``sweepherd.wandb.adopt_logs``), looking at each
    trial that has no log of its attempt in its folder yet at most every few seconds (``now``:
    monotonic). Never raises: it runs in the agent's loop, and without the link the run only
    lacks its wandb metric, as before."""
    due = []
    for trial in trials:
        if trial.wandb_log_seen or now < trial.next_log_look:
            continue
        young = now - trial.started_monotonic < LOOK_OFTEN_FOR_S
        trial.next_log_look = now + LOOK_EVERY_S[0 if young else 1]
        if wrote_wandb_log(trial):
            trial.wandb_log_seen = True
        else:
            due.append(trial)
    if not due:
        return
    try:
        from sweepherd.wandb import adopt_logs, open_transaction_logs

        open_logs = open_transaction_logs(t.pid for t in due)
        for trial in due:
            candidates = open_logs.get(trial.pid, [])
            links = adopt_logs(trial.run_dir, trial.run.id, candidates)
            if links is None:
                trial.wandb_log_seen = True  # stop looking: it would not get any clearer
                log.warning(
                    "run %s: its script holds several wandb runs open outside the run folder "
                    "(%s) and none is named after the run: none is read or synced as the run's",
                    trial.run.id,
                    ", ".join(str(p) for p in candidates),
                )
            elif links:
                trial.wandb_log_seen = True
                log.info(
                    "run %s: its script writes its wandb log to %s (wandb.init(dir=...) or "
                    "id=...); linked into its run folder",
                    trial.run.id,
                    ", ".join(str(p.resolve()) for p in links),
                )
    except Exception as exc:
        log.warning("could not look for wandb logs written outside the run folders: %s", exc)


def _new_logs(trial: Trial) -> list[Path]:
    """The run's wandb logs that appeared since the trial started (earlier attempts' not)."""
    return [p for p in wandb_logs(trial.run_dir, trial.run.id) if p not in trial.logs_at_start]


def wrote_wandb_log(trial: Trial) -> bool:
    """A wandb log of the trial's attempt is in its run folder (or was linked in): a new one
    that is not a later attempt's (as far as ``trial.attempt_logs`` can tell)."""
    if trial.wandb_log_seen:
        return True
    mine = trial.attempt_logs
    return any(mine is None or mine(p) is not False for p in _new_logs(trial))


def record_attempt(trial: Trial) -> None:
    """Write which wandb logs this attempt wrote (``sweepherd.wandb.record_attempt_logs``):
    those that appeared while it ran and were started on this machine after it was, by its
    process (with W&B's default command the trial's process is the one wandb runs in). Never
    raises (it runs in the agent's loop as each trial ends): without the record, the attempt's
    logs are uploaded like any other attempt's."""
    try:
        from sweepherd.wandb import logs_started_here, record_attempt_logs

        own = logs_started_here(_new_logs(trial), since=trial.spawned_at, pid=trial.pid)
        written = record_attempt_logs(trial.run_dir, trial.run.attempt, own)
    except Exception as exc:
        log.warning("run %s: could not record its attempt's wandb logs: %s", trial.run.id, exc)
        return
    if not written:
        log.warning("run %s: could not write its attempt record in %s", trial.run.id, trial.run_dir)


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
