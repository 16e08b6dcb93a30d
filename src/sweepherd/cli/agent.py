"""``sweepherd agent SWEEP``: claim and run trials until the sweep is done."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from sweepherd.cli._common import (
    setup_logging,
    sweep_argument,
    trial_options,
    trials_per_gpu_option,
)


@click.command()
@sweep_argument
@click.option(
    "--slots",
    type=int,
    default=None,
    help="Trials to run at once (default 1, or one per GPU slot).",
)
@click.option(
    "--gpus",
    default=None,
    metavar="IDS|auto",
    help="GPUs to use, e.g. 0,1; 'auto' takes CUDA_VISIBLE_DEVICES (as Slurm sets it).",
)
@trials_per_gpu_option
@click.option(
    "--gpus-per-trial", type=int, default=1, show_default=True, help="GPUs each trial gets."
)
@click.option("--count", type=int, default=None, help="Start at most this many runs, then exit.")
@click.option(
    "--heartbeat",
    type=float,
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="How often this agent signals that it is alive.",
)
@trial_options
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Where trials run (default: where the sweep was created).",
)
@click.option(
    "--all-nodes",
    is_flag=True,
    help="Inside a Slurm allocation: start one agent per node with srun.",
)
@click.option("-v", "--verbose", count=True, help="More log output.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def agent(
    sweep: str,
    root: Path,
    slots: int | None,
    gpus: str | None,
    trials_per_gpu: int,
    gpus_per_trial: int,
    count: int | None,
    lost_after: float,
    heartbeat: float,
    stop_grace: float,
    wandb_mode: str,
    workdir: Path | None,
    all_nodes: bool,
    verbose: int,
    quiet: bool,
) -> int:
    """Run an agent for SWEEP: claim runs and run them until the sweep is done.

    Runs one trial per slot. Exits 0 when the sweep has nothing left for it, and 75 when it was
    stopped by a signal (Slurm preemption or time limit, Ctrl-C) while work remained: its
    running runs are then marked preempted and resume first, with the same run ids.
    """
    from sweepherd.agent import Agent, AgentOptions, parse_gpus, plan_slots
    from sweepherd.store import open_sweep

    if all_nodes:
        from sweepherd.launch.slurm import run_on_all_nodes

        setup_logging(verbose, quiet)  # "started agents on ...", "requeued job ..." in the log
        return run_on_all_nodes(["agent", *_forwarded_args(click.get_current_context())])

    store = open_sweep(sweep, root)
    if store.meta.get("backend") == "wandb":  # made by `run|submit --backend wandb`
        from sweepherd.errors import AgentError
        from sweepherd.wandb import describe

        raise AgentError(f"sweep {store.sweep_id} {describe(store)}")
    signal_grace = os.environ.get("SWEEPHERD_SIGNAL_GRACE_S")  # set by the sbatch script
    asked_grace = stop_grace
    if signal_grace:
        # Stop trials well within the warning Slurm gives before it kills the job.
        stop_grace = min(stop_grace, max(1.0, float(signal_grace) / 2))
    options = AgentOptions(
        slots=plan_slots(
            n_slots=slots,
            gpus=parse_gpus(gpus),
            trials_per_gpu=trials_per_gpu,
            gpus_per_trial=gpus_per_trial,
        ),
        count=count,
        heartbeat_s=heartbeat,
        lost_after_s=lost_after,
        stop_grace_s=stop_grace,
        wandb_mode=wandb_mode,
        workdir=workdir,
    )
    runner = Agent(store, options)
    setup_logging(verbose, quiet, prefix=runner.id)
    if stop_grace < asked_grace:
        given = click.get_current_context().get_parameter_source("stop_grace")
        level = logging.INFO if given is click.core.ParameterSource.DEFAULT else logging.WARNING
        logging.getLogger("sweepherd.agent").log(
            level,
            "--stop-grace %g s is cut to %g s: half the %s s between Slurm's warning and the "
            "time limit (--signal-grace), so that trials stop before the job is killed",
            asked_grace,
            stop_grace,
            signal_grace,
        )
    result = runner.run()
    return result.exit_status


def _forwarded_args(ctx: click.Context) -> list[str]:
    """This command's arguments, as parsed, for the agent on each node (without --all-nodes)."""
    out: list[str] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if isinstance(param, click.Argument):
            out.append(str(value))
            continue
        if not isinstance(param, click.Option) or param.name == "all_nodes" or value is None:
            continue
        flag = param.opts[0]
        if param.count:
            out += [flag] * int(value)
        elif param.is_flag:
            if value:
                out.append(flag)
        elif value != param.default:
            out += [flag, str(value)]
    return out
