"""The sbatch script of a ``--backend wandb`` sweep: W&B's own agents, one per GPU slot.

This is what W&B users write by hand for a sweep on Slurm, as a pure function of
:class:`SbatchOptions`: one task per node (``srun``), and on each node one
``wandb agent --count N ENTITY/PROJECT/ID`` per GPU slot, pinned to its GPU with
``CUDA_VISIBLE_DEVICES`` (a GPU shared by K trials gets K agents), or ``slots`` agents on nodes
without GPUs. The W&B server hands out the runs; nothing here needs the sweep directory but
for the job's output and the agents' logs.

The directives and quoting come from :mod:`sweepherd.launch.slurm._render`. Unlike sweepherd's
own agents, ``wandb agent`` neither resumes preempted runs nor requeues the job, so there is no
``--signal``: at the time limit or on ``scancel`` Slurm's SIGTERM reaches the agents, which
forward it to their runs (``--forward-signals``). ``signal_grace_s``, ``stagger_s``,
``array_max_parallel``, ``python`` and ``agent_args`` do not apply.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from sweepherd.launch.slurm._options import SbatchOptions
from sweepherd.launch.slurm._render import _capacity, _slurm_filename, sbatch_header

#: The variable that tells each node where the agents' logs go (``<sweep>/slurm``).
LOG_DIR_VAR = "SWEEPHERD_WANDB_AGENT_LOGS"


def render_wandb_submit(
    options: SbatchOptions,
    *,
    sweep_args: Sequence[str],
    workdir: Path,
    count: int | None = None,
    wandb: str = "wandb",
) -> str:
    """The sbatch script that runs a W&B sweep on ``options.nodes`` nodes.

    ``sweep_args`` name the sweep to ``wandb agent`` (``entity/project/id``, or ``--entity``,
    the entity and the id; see ``WandbSweep.agent_args``); the agents start in
    ``workdir`` (where the sweep's ``program`` is) and each runs at most ``count`` runs.
    ``wandb`` is the command to run (resolved on the node after the setup lines when bare).
    """
    sweep_dir = str(options.sweep_dir)
    output = options.output or f"{_slurm_filename(sweep_dir)}/slurm/%j.out"
    head = [
        f"# sweepherd: W&B agents: {_one_line(shlex.join(['wandb', 'agent', *sweep_args]))}",
        f"# (sweep directory {sweep_dir})",
        f"# {options.nodes} node(s); {_capacity(options)},",
        "# each trial run by its own `wandb agent`.",
    ]
    lines = ["#!/bin/bash", *head]
    lines += sbatch_header(options, [("--nodes", str(options.nodes))], output)
    if options.setup:
        lines += ["", "# setup", *options.setup]
    env = {"PYTHONUNBUFFERED": "1", **options.env, LOG_DIR_VAR: f"{sweep_dir}/slurm"}
    lines += ["", *(f"export {name}={shlex.quote(value)}" for name, value in env.items())]
    lines += [
        "",
        "# wandb agent runs the sweep's program from here",
        f"cd {shlex.quote(str(workdir))}",
        "",
        "# one task per node; each starts its node's agents and waits for them",
        f"exec srun --nodes={options.nodes} --ntasks={options.nodes} --ntasks-per-node=1 "
        f"bash -c {shlex.quote(_node_script(options, sweep_args, wandb, count))}",
        "",
    ]
    return "\n".join(lines)


def _node_script(
    options: SbatchOptions, sweep_args: Sequence[str], wandb: str, count: int | None
) -> str:
    """The shell text each node's task runs: start the agents in the background, wait."""
    argv = [wandb, "agent"]
    if count is not None:
        argv += ["--count", str(count)]
    agent = shlex.join([*argv, "--forward-signals", *sweep_args])
    log = f'"${LOG_DIR_VAR}/wandb-agent-$SLURM_JOB_ID-$SLURMD_NODENAME-$slot.log"'
    if options.gpus_per_node:
        lines = [
            "# Slurm gives this task the GPUs of its node in CUDA_VISIBLE_DEVICES",
            'gpus="${CUDA_VISIBLE_DEVICES:?Slurm gave no GPUs to this task}"',
            "slot=0",
            "for gpu in ${gpus//,/ }; do",
            f"  for _ in {{1..{options.trials_per_gpu}}}; do",
            f'    CUDA_VISIBLE_DEVICES="$gpu" {agent} > {log} 2>&1 &',
            "    slot=$((slot + 1))",
            "  done",
            "done",
            "wait",
        ]
    else:
        lines = [
            f"for slot in $(seq 0 {(options.slots or 1) - 1}); do",
            f"  {agent} > {log} 2>&1 &",
            "done",
            "wait",
        ]
    return "\n" + "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())
