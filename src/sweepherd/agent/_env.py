"""The environment a trial runs in: the caller's, plus what W&B and sweepherd need.

With these variables an unchanged ``wandb.init()`` picks up the run's parameters, id, folder and
project, offline or online, and :func:`sweepherd.log` knows where to write. ``WANDB_SWEEP_ID``
is set only when a real W&B sweep exists (``--backend wandb``): a made-up one makes a later
``wandb sync`` fail with a 404 (wandb issue 8115).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sweepherd.client import ENV_METRICS_FILE, ENV_PARAMS_FILE

#: How often (seconds) wandb >= 0.31 flushes its transaction log, so the agent sees metrics live.
WANDB_FLUSH_INTERVAL_S = 2


@dataclass(frozen=True)
class TrialContext:
    """What identifies one attempt of one run, for its environment."""

    sweep_dir: Path
    sweep_id: str
    sweep_name: str
    run_id: str
    run_dir: Path
    attempt: int
    params_file: Path
    metrics_file: Path
    checkpoint_dir: Path
    node: str
    cuda_visible_devices: str | None = None
    wandb_mode: str = "offline"
    wandb_project: str | None = None
    wandb_entity: str | None = None
    wandb_sweep_id: str | None = None


def trial_environment(base: Mapping[str, str], ctx: TrialContext) -> dict[str, str]:
    """``base`` (usually ``os.environ``) with the run's variables laid over it."""
    env = dict(base)
    # The agent's own wandb service must not leak into the child (wandb_agent.py does the same).
    env.pop("WANDB_SERVICE", None)
    env.update(
        {
            "SWEEPHERD_SWEEP_DIR": str(ctx.sweep_dir),
            "SWEEPHERD_SWEEP_ID": ctx.sweep_id,
            "SWEEPHERD_RUN_ID": ctx.run_id,
            "SWEEPHERD_RUN_DIR": str(ctx.run_dir),
            "SWEEPHERD_ATTEMPT": str(ctx.attempt),
            "SWEEPHERD_CHECKPOINT_DIR": str(ctx.checkpoint_dir),
            "SWEEPHERD_NODE": ctx.node,
            ENV_METRICS_FILE: str(ctx.metrics_file),
            ENV_PARAMS_FILE: str(ctx.params_file),
            "WANDB_SWEEP_PARAM_PATH": str(ctx.params_file),
            "WANDB_RUN_ID": ctx.run_id,
            "WANDB_DIR": str(ctx.run_dir),
            "WANDB_MODE": ctx.wandb_mode,
            "WANDB__TRANSACTION_LOG_FLUSH_INTERVAL": str(WANDB_FLUSH_INTERVAL_S),
        }
    )
    env.setdefault("WANDB_RUN_GROUP", ctx.sweep_name)
    if ctx.wandb_project:
        env["WANDB_PROJECT"] = ctx.wandb_project
    if ctx.wandb_entity:
        env["WANDB_ENTITY"] = ctx.wandb_entity
    if ctx.wandb_sweep_id:
        env["WANDB_SWEEP_ID"] = ctx.wandb_sweep_id
    else:
        env.pop("WANDB_SWEEP_ID", None)
    if ctx.attempt > 1:
        env["WANDB_RESUME"] = "allow"
    else:
        env.pop("WANDB_RESUME", None)
    if ctx.cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = ctx.cuda_visible_devices
    return env
