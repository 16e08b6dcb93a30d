"""``sweepherd submit --backend wandb``: a W&B sweep whose agents run as one Slurm job.

The W&B sweep is created first (the one call that needs the W&B server), then the sweepherd
sweep directory that records it, then the sbatch script
(:func:`~sweepherd.launch.slurm.render_wandb_submit`) is written to ``<sweep>/slurm/`` and
submitted, and the job is recorded in the sweep's journal so that ``sweepherd cancel`` stops it.
Everything that can be checked without the server or Slurm is checked before anything is
created, and a dry run creates nothing at all, not even the W&B sweep.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweepherd.errors import ConfigError, SlurmError, StoreError
from sweepherd.store import SweepStore
from sweepherd.wandb._backend import (
    BACKEND,
    SweepCreator,
    WandbSweep,
    create_backend_sweep,
    runs_per_agent,
    wandb_on_path,
    wandb_place,
)

if TYPE_CHECKING:
    from sweepherd.config import SweepConfig
    from sweepherd.launch.slurm import SbatchOptions

#: The ``kind`` of the job recorded in the journal (``submit`` is sweepherd's own agents' job,
#: whose options ``sweepherd scale`` reuses; these are not sweepherd agents).
JOB_KIND = "wandb-submit"
SUBMIT_SCRIPT = "submit.sbatch"
#: The sweep id shown by a dry run, which creates no W&B sweep.
DRY_RUN_SWEEP_ID = "SWEEP_ID"
#: Slurm options that only sweepherd's own agents use.
_NOT_FOR_WANDB = {"agent_args": "--agent-args"}


@dataclass(frozen=True)
class WandbSubmission:
    """What :func:`submit_wandb` (or a dry run) did."""

    script: str
    sweep: WandbSweep
    n_agents: int  # `wandb agent` processes over all nodes
    count: int | None  # each agent's --count
    store: SweepStore | None = None  # None for a dry run
    script_path: Path | None = None
    job_id: str | None = None


def submit_wandb(
    config_path: Path,
    root: Path,
    settings: Mapping[str, Any],
    *,
    run_cap: int | None = None,
    name: str | None = None,
    entity: str | None = None,
    project: str | None = None,
    dry_run: bool = False,
    creator: SweepCreator | None = None,
) -> WandbSubmission:
    """Create the W&B sweep and a sweep directory for it, and submit its agents to Slurm.

    ``settings`` are :class:`~sweepherd.launch.slurm.SbatchOptions` fields (not
    ``sweep_dir``). Raises :class:`~sweepherd.errors.ConfigError` (config, options: nothing
    created), :class:`~sweepherd.errors.WandbError` (the server refused: nothing created),
    :class:`~sweepherd.errors.SlurmError` (no Slurm here: nothing created; sbatch refused the
    job: the sweep directory is removed, the W&B sweep stays and the message names it).
    """
    from sweepherd.launch import load_with_overrides, resolve_workdir
    from sweepherd.launch.slurm import SbatchOptions, require_commands, sbatch
    from sweepherd.store import new_sweep_id

    unused = [flag for key, flag in _NOT_FOR_WANDB.items() if settings.get(key)]
    if unused:
        raise ConfigError(
            f"{', '.join(unused)}: only sweepherd's own agents take it, not `wandb agent`",
            hint="leave it out with --backend wandb",
        )
    root = Path(root).resolve()
    SbatchOptions(sweep_dir=root / "_", **settings)  # every option checked before creating
    config = load_with_overrides(config_path, run_cap=run_cap, name=name)
    workdir = resolve_workdir(config, config_path)
    wandb = wandb_on_path() or "wandb"  # else found on the node
    if dry_run:
        options = SbatchOptions(sweep_dir=root / new_sweep_id(), **settings)
        sweep = WandbSweep(DRY_RUN_SWEEP_ID, *wandb_place(config, entity=entity, project=project))
        return _rendered(options, sweep, workdir, wandb, agents_and_count(config, options))
    require_commands("sbatch")
    store, sweep = create_backend_sweep(
        config_path,
        root,
        run_cap=run_cap,
        name=name,
        entity=entity,
        project=project,
        creator=creator,
    )
    options = SbatchOptions(sweep_dir=store.path.resolve(), **settings)
    done = _rendered(options, sweep, workdir, wandb, agents_and_count(config, options))
    try:
        folder = store.path.resolve() / "slurm"
        folder.mkdir(exist_ok=True)  # Slurm writes the job's output here; it never creates it
        path = folder / SUBMIT_SCRIPT
        path.write_text(done.script)
        job_id = sbatch(path)
    except (OSError, SlurmError) as exc:
        shutil.rmtree(store.path, ignore_errors=True)
        message = exc.message if isinstance(exc, SlurmError) else str(exc)
        raise SlurmError(
            f"{message} Nothing was submitted; the sweep directory made for it was removed, "
            f"but the W&B sweep {sweep.path} was created.",
            hint=f"Fix the problem and submit again, or start agents for that sweep yourself "
            f"with `{sweep.agent_command}`.",
        ) from exc
    _record(store, job_id, options, path)
    return WandbSubmission(done.script, sweep, done.n_agents, done.count, store, path, job_id)


def agents_and_count(config: SweepConfig, options: SbatchOptions) -> tuple[int, int | None]:
    """``(agents over all nodes, --count of each)`` for a submission."""
    per_node = options.gpus_per_node * options.trials_per_gpu or options.slots or 1
    n_agents = options.nodes * per_node
    return n_agents, runs_per_agent(config, n_agents)


def _rendered(
    options: SbatchOptions,
    sweep: WandbSweep,
    workdir: Path,
    wandb: str,
    agents: tuple[int, int | None],
) -> WandbSubmission:
    from sweepherd.launch.slurm import render_wandb_submit

    n_agents, count = agents
    script = render_wandb_submit(
        options, sweep_args=sweep.agent_args, workdir=workdir, count=count, wandb=wandb
    )
    return WandbSubmission(script, sweep, n_agents, count)


def _record(store: SweepStore, job_id: str, options: SbatchOptions, path: Path) -> None:
    try:
        with store.transaction() as txn:
            txn.record_job(
                job_id,
                kind=JOB_KIND,
                backend=BACKEND,
                nodes=options.nodes,
                script=str(path),
            )
    except StoreError as exc:
        raise StoreError(
            f"Slurm job {job_id} was submitted, but it could not be recorded in the sweep: "
            f"{exc.message}",
            hint=f"The job runs anyway; `scancel {job_id}` stops it.",
        ) from exc
