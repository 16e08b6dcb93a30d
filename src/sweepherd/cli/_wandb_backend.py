"""``--backend wandb`` for ``sweepherd run`` and ``sweepherd submit``: W&B's own controller.

The commands parse their options as usual and hand over here when the backend is ``wandb``;
the work is in :mod:`sweepherd.wandb` (``_backend``, ``_backend_slurm``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from sweepherd.errors import AgentError, ExitStatus

#: The choices of ``--backend``.
BACKENDS = ("sweepherd", "wandb")

backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="sweepherd",
    show_default=True,
    help="sweepherd: the sweep lives in the sweep directory, no server needed (runs log to "
    "W&B offline). wandb: W&B's own controller, as `wandb sweep` + `wandb agent` (one per "
    "GPU slot); the nodes must reach W&B, and options for sweepherd's agents (--wandb-mode, "
    "--lost-after, --stop-grace, --agent-args) do not apply.",
)


def run_with_wandb(
    config_path: Path,
    root: Path,
    *,
    n_agents: int | None,
    slots: int | None,
    gpus: str | None,
    trials_per_gpu: int,
    run_cap: int | None,
    name: str | None,
) -> int:
    """``sweepherd run --backend wandb``: a W&B sweep, ``wandb agent`` per slot, here."""
    from sweepherd.agent import parse_gpus
    from sweepherd.wandb import (
        LocalWandbAgents,
        create_backend_sweep,
        find_wandb_executable,
        gpu_slots,
        runs_per_agent,
    )

    if n_agents is not None and n_agents < 1:
        raise click.BadParameter("must be at least 1", param_hint="--agents")
    if slots is not None and slots < 1:
        raise click.BadParameter("must be at least 1", param_hint="--slots")
    gpu_ids = parse_gpus(gpus)
    agent_slots = gpu_slots(
        gpu_ids, trials_per_gpu=trials_per_gpu, n_cpu_slots=(n_agents or 1) * (slots or 1)
    )
    wandb = find_wandb_executable()
    store, sweep = create_backend_sweep(config_path, root, run_cap=run_cap, name=name)
    count = runs_per_agent(store.config, len(agent_slots))
    workdir = Path(str(store.meta.get("workdir") or Path.cwd()))
    agents = LocalWandbAgents(store, agent_slots, count=count, wandb=wandb, workdir=workdir)

    click.echo(f"Created W&B sweep {sweep.path}" + (f": {sweep.url}" if sweep.url else ""))
    click.echo(f"  sweep directory: {store.path} (backend wandb)")
    pinned = [s for s in agent_slots if s is not None]
    on = f" on GPU(s) {','.join(pinned)}" if pinned else ""
    each = f", at most {count} run(s) each" if count is not None else ""
    click.echo(
        f"Starting {len(agent_slots)} `wandb agent` process(es){on}{each}; "
        f"logs in {agents.log_dir}/"
    )
    if count is None:
        click.echo(
            f"{store.config.method} search has no end of its own: it runs until Ctrl-C or "
            f"`sweepherd cancel {store.path}` (set run_cap, or pass --run-cap, to bound it)"
        )
    from sweepherd.launch.local import stop_signals_interrupt

    with stop_signals_interrupt():  # a kill or a closed terminal stops as Ctrl-C does
        agents.start()
        outcome = agents.wait()
    where = sweep.url or f"W&B sweep {sweep.path}"
    if outcome.interrupted:
        click.echo(f"Stopped. The W&B sweep keeps its runs: {where}")
        return int(ExitStatus.INTERRUPTED)
    if outcome.cancelled:
        click.echo(f"Sweep cancelled; the agents were stopped. Runs: {where}")
        return int(ExitStatus.OK)
    if outcome.failed:
        first = outcome.failed[0]
        raise AgentError(
            f"{len(outcome.failed)} of {len(agent_slots)} `wandb agent` processes failed "
            f"(agent {first}: exit status {outcome.exit_codes[first]})",
            hint=f"see their logs in {agents.log_dir}/",
        )
    click.echo(f"Done: the agents ended. Runs and results: {where}")
    return int(ExitStatus.OK)


def submit_with_wandb(
    config_path: Path,
    root: Path,
    settings: Mapping[str, Any],
    *,
    run_cap: int | None,
    name: str | None,
    dry_run: bool,
) -> None:
    """``sweepherd submit --backend wandb``: a W&B sweep, its agents as one Slurm job."""
    from sweepherd.wandb import submit_wandb

    done = submit_wandb(config_path, root, settings, run_cap=run_cap, name=name, dry_run=dry_run)
    if dry_run:
        click.echo(done.script, nl=False)
        click.echo(
            "# dry run: nothing was created or submitted (the W&B sweep is created at submit; "
            "SWEEP_ID stands for its id)",
            err=True,
        )
        return
    assert done.store is not None and done.script_path is not None  # a real submit sets them
    path = done.store.path.resolve()
    each = f", at most {done.count} run(s) each" if done.count is not None else ""
    click.echo(
        f"Created W&B sweep {done.sweep.path}" + (f": {done.sweep.url}" if done.sweep.url else "")
    )
    click.echo(f"  sweep directory: {path} (backend wandb)")
    click.echo(
        f"Submitted Slurm job {done.job_id}: {done.n_agents} `wandb agent` process(es){each}; "
        f"script: {done.script_path}"
    )
    click.echo(f"  agent logs: {path / 'slurm'}/wandb-agent-<job>-<node>-<slot>.log")
    click.echo(f"  stop:       sweepherd cancel {path}")
