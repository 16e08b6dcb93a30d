"""Slurm: render sbatch scripts, run Slurm's commands, fan agents out over an allocation.

- :class:`SbatchOptions` — what a submission asks for, validated.
- :func:`render_submit` / :func:`render_scale` — the sbatch script texts (pure functions).
- :func:`sbatch`, :func:`squeue_jobs`, :func:`scancel`, :func:`scontrol_requeue`,
  :func:`scontrol_show_hostnames`, :func:`srun_argv` — the only code that runs Slurm's
  commands; failures raise one :class:`~sweepherd.errors.SlurmError` with Slurm's words.
- :func:`fan_out` / :func:`run_on_all_nodes` — ``sweepherd agent SWEEP --all-nodes``.
- :class:`SlurmLauncher` — ``sweepherd submit``, ``scale`` and the Slurm part of ``cancel``.
- :func:`sweep_jobs` — the state of a sweep's jobs, joinable to its runs by ``Run.job``.
"""

from sweepherd.launch.slurm._commands import (
    JobState,
    decode_wait_status,
    job_requeueable,
    parse_sbatch_parsable,
    parse_scancel_not_signalled,
    parse_squeue,
    require_commands,
    sbatch,
    scancel,
    scontrol_requeue,
    scontrol_show_hostnames,
    slurm_error,
    squeue_jobs,
    srun_argv,
)
from sweepherd.launch.slurm._fanout import (
    AGENT_STOP_SIGNAL,
    AGENT_TIME_LIMIT_SIGNAL,
    REQUEUE_EXIT_STATUS,
    FanOutResult,
    allocation_nodes,
    fan_out,
    job_reference,
    run_on_all_nodes,
)
from sweepherd.launch.slurm._jobs import SweepJob, sweep_jobs
from sweepherd.launch.slurm._launcher import (
    SCALE,
    SUBMIT,
    CancelReport,
    SlurmLauncher,
    Submission,
    finished_reason,
    recorded_job_ids,
)
from sweepherd.launch.slurm._options import TIME_FORMATS, SbatchOptions, parse_time_limit_s
from sweepherd.launch.slurm._render import render_scale, render_submit, sbatch_quote
from sweepherd.launch.slurm._render_wandb import render_wandb_submit

__all__ = [
    "AGENT_STOP_SIGNAL",
    "AGENT_TIME_LIMIT_SIGNAL",
    "REQUEUE_EXIT_STATUS",
    "SCALE",
    "SUBMIT",
    "TIME_FORMATS",
    "CancelReport",
    "FanOutResult",
    "JobState",
    "SbatchOptions",
    "SlurmLauncher",
    "Submission",
    "SweepJob",
    "allocation_nodes",
    "decode_wait_status",
    "fan_out",
    "finished_reason",
    "job_reference",
    "job_requeueable",
    "parse_sbatch_parsable",
    "parse_scancel_not_signalled",
    "parse_squeue",
    "parse_time_limit_s",
    "recorded_job_ids",
    "render_scale",
    "render_submit",
    "render_wandb_submit",
    "require_commands",
    "run_on_all_nodes",
    "sbatch",
    "sbatch_quote",
    "scancel",
    "scontrol_requeue",
    "scontrol_show_hostnames",
    "slurm_error",
    "squeue_jobs",
    "srun_argv",
    "sweep_jobs",
]
