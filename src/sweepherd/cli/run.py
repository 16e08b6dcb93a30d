"""``sweepherd run sweep.yaml``: create a sweep and run it on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from sweepherd.cli._common import root_option, trial_options, trials_per_gpu_option
from sweepherd.cli._wandb_backend import backend_option
from sweepherd.errors import AgentError, ExitStatus, RunsFailedError
from sweepherd.monitor import ProgressView

if TYPE_CHECKING:
    from rich.console import Console

    from sweepherd.launch.local import LocalOutcome
    from sweepherd.store import SweepStore


@click.command()
@click.argument("config_path", metavar="SWEEP_YAML", type=click.Path(path_type=Path))
@root_option
@click.option(
    "--agents",
    "n_agents",
    type=int,
    default=None,
    help="Agent processes to start (default 1, or one per GPU with --gpus).",
)
@click.option("--slots", type=int, default=None, help="Trials each agent runs at once (default 1).")
@click.option(
    "--gpus",
    default=None,
    metavar="IDS|auto",
    help="GPUs to split between the agents, e.g. 0,1,2,3.",
)
@trials_per_gpu_option
@click.option("--run-cap", type=int, default=None, help="Stop after this many runs (sets run_cap).")
@click.option("--name", default=None, help="A name for the sweep (default: the config's name).")
@trial_options
@backend_option
def run(
    config_path: Path,
    root: Path,
    n_agents: int | None,
    slots: int | None,
    gpus: str | None,
    trials_per_gpu: int,
    run_cap: int | None,
    name: str | None,
    wandb_mode: str,
    lost_after: float,
    stop_grace: float,
    backend: str,
) -> int:
    """Create a sweep from SWEEP_YAML and run it here with N agents until it is done.

    The sweep lives in a directory under --dir; `sweepherd status SWEEP` shows it at any time,
    and `sweepherd agent SWEEP` adds agents (here or on other machines sharing the folder).
    Ctrl-C stops the agents gracefully: running runs are kept as preempted and resume when an
    agent is started again for the sweep.
    """
    if backend == "wandb":
        from sweepherd.cli._wandb_backend import run_with_wandb

        return run_with_wandb(
            config_path,
            root,
            n_agents=n_agents,
            slots=slots,
            gpus=gpus,
            trials_per_gpu=trials_per_gpu,
            run_cap=run_cap,
            name=name,
        )
    from rich.console import Console
    from rich.text import Text

    from sweepherd.agent import parse_gpus
    from sweepherd.launch import prepare_sweep
    from sweepherd.launch.local import (
        AgentSpec,
        LocalLauncher,
        split_gpus,
        stop_signals_interrupt,
    )

    if n_agents is not None and n_agents < 1:
        raise click.BadParameter("must be at least 1", param_hint="--agents")
    gpu_ids = parse_gpus(gpus)
    n = n_agents or (len(gpu_ids) if gpu_ids else 1)
    shares = split_gpus(gpu_ids, n) if gpu_ids else [()] * n
    store = prepare_sweep(config_path, root, run_cap=run_cap, name=name)

    console = Console()
    console.print(
        Text.assemble("Created sweep ", (store.sweep_id, "bold"), f" in {store.path}"),
        highlight=False,
    )
    config = store.config
    if config.method != "grid" and config.run_cap is None:
        console.print(
            f"{config.method} search has no end of its own: it runs until Ctrl-C "
            "(set run_cap in the config, or pass --run-cap, to bound it)",
            style="yellow",
            highlight=False,
        )
    common = [
        "--wandb-mode",
        wandb_mode,
        "--lost-after",
        str(lost_after),
        "--stop-grace",
        str(stop_grace),
    ]
    specs = []
    for share in shares:
        args = list(common)
        if share:
            args += ["--gpus", ",".join(share), "--trials-per-gpu", str(trials_per_gpu)]
        if slots is not None:
            args += ["--slots", str(slots)]
        specs.append(AgentSpec(tuple(args)))

    launcher = LocalLauncher(store, specs)
    view = ProgressView(store, console)
    try:
        with stop_signals_interrupt():  # a kill or a closed terminal stops as Ctrl-C does
            launcher.start()
            outcome = launcher.wait(on_tick=view.update)
    finally:
        view.close()
    return report_outcome(console, store, outcome)


def report_outcome(console: Console, store: SweepStore, outcome: LocalOutcome) -> int:
    """Print how the sweep ended and turn failures into the right error."""
    from sweepherd.monitor import (
        best_table,
        failed_runs,
        failures_text,
        why_failed,
        without_metric,
    )

    runs = list(store.snapshot().runs.values())
    config = store.config
    if any(r.metric is not None for r in runs):
        console.print(best_table(config, runs, 5))
    console.print(failures_text(runs), end="")
    if outcome.interrupted:
        console.print(
            f"Stopped. Running runs were kept and resume with: sweepherd agent {store.path}",
            highlight=False,
            markup=False,
        )
        return int(ExitStatus.INTERRUPTED)
    if outcome.errors:
        raise AgentError(outcome.errors[0], hint=f"agent logs are in {store.path / 'logs'}")
    failed = failed_runs(runs)
    missing = without_metric(config, runs)
    if failed:
        first = f"{failed[0].id}: {why_failed(failed[0])}"
        also = ""
        if missing and config.metric is not None:
            also = f"; {len(missing)} finished without a value of {config.metric.name!r}"
        raise RunsFailedError(
            f"{len(failed)} of {len(runs)} runs failed (first: {first}){also}",
            hint=f"see `sweepherd status {store.path}` and the runs' stderr.log",
        )
    if missing and config.metric is not None:
        raise RunsFailedError(
            f"{len(missing)} of {len(runs)} runs finished without logging the metric "
            f"{config.metric.name!r}",
            hint="log it with wandb.log({...}) or sweepherd.log({...}) under exactly that name",
        )
    console.print(f"Sweep {store.sweep_id} done: {len(runs)} runs.", highlight=False)
    return int(ExitStatus.OK)
