"""The sbatch scripts of a sweep, as pure functions of :class:`SbatchOptions`.

Two scripts: :func:`render_submit` asks for one allocation of N nodes and fans the agents out
over it; :func:`render_scale` asks for a job array of one-node elements that join a running
sweep. Both end in ``exec python -m sweepherd agent SWEEP --all-nodes ...``, so the agent
process is the batch script itself and gets Slurm's warning signal (``--signal=B:USR1@grace``).

Every value is quoted for where it lands: ``#SBATCH`` lines with :func:`sbatch_quote` (sbatch
reads double quotes and backslash escapes there, and an unquoted ``#`` starts a comment), shell
lines with :func:`shlex.quote`. The ``setup`` lines are the one exception: they *are* shell.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence

from sweepherd.errors import ConfigError
from sweepherd.launch.slurm._options import SbatchOptions

#: Characters that need no quoting on an ``#SBATCH`` line.
_PLAIN_RE = re.compile(r"^[A-Za-z0-9_.,:/%=@+-]+$")
#: 1000 * (golden ratio - 1): array element i waits (i * 618 mod 1000) thousandths of the
#: stagger window, so neighbouring elements start far apart and every element count spreads
#: evenly over the window.
_STAGGER_STEP = 618


def sbatch_quote(value: str) -> str:
    """Quote ``value`` for an ``#SBATCH`` line, the way sbatch's own parser reads it back.

    sbatch splits directives on blanks, treats an unquoted ``#`` as a comment, and inside
    double quotes honours ``\\"`` and ``\\\\``; single quotes and ``$`` are literal.
    """
    if _PLAIN_RE.match(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _slurm_filename(path: str) -> str:
    """Escape a literal path for Slurm's filename patterns (``%`` becomes ``%%``)."""
    return path.replace("%", "%%")


def render_submit(options: SbatchOptions) -> str:
    """The sbatch script for one allocation of ``options.nodes`` nodes, one agent per node."""
    output = options.output or f"{_slurm_filename(str(options.sweep_dir))}/slurm/%j.out"
    head = [
        f"# sweepherd: agents of the sweep in {options.sweep_dir}",
        f"# {options.nodes} node(s), one agent per node; {_capacity(options)}.",
    ]
    directives = [("--nodes", str(options.nodes))]
    return _script(options, head, directives, output, stagger=False, array=False)


def render_scale(options: SbatchOptions, n_nodes: int) -> str:
    """The sbatch script of a job array of ``n_nodes`` one-node elements joining the sweep.

    ``options.nodes`` is ignored: every element is one node with its own agent. Elements wait
    a staggered delay (up to ``options.stagger_s``) so hundreds of them do not hit the sweep
    directory in the same second.
    """
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, int) or n_nodes < 1:
        raise ConfigError(
            f"the number of nodes to add must be a whole number >= 1, got {n_nodes!r}"
        )
    array = f"0-{n_nodes - 1}"
    if options.array_max_parallel is not None:
        array += f"%{options.array_max_parallel}"
    output = options.output or f"{_slurm_filename(str(options.sweep_dir))}/slurm/%A_%a.out"
    head = [
        f"# sweepherd: more agents for the sweep in {options.sweep_dir}",
        f"# a job array of {n_nodes} one-node element(s), one agent each; {_capacity(options)}.",
    ]
    directives = [("--array", array), ("--nodes", "1")]
    return _script(options, head, directives, output, stagger=options.stagger_s > 0, array=True)


#: What Slurm sets in an array task only (and sbatch passes on to jobs submitted from one).
_ARRAY_VARIABLES = (
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
)


def _capacity(options: SbatchOptions) -> str:
    if options.gpus_per_node:
        return (
            f"{options.gpus_per_node} GPU(s) x {options.trials_per_gpu} trial(s) per GPU = "
            f"{options.trials_per_node} trial(s) at once per node"
        )
    return f"{options.trials_per_node} trial(s) at once per node"


def sbatch_header(
    options: SbatchOptions,
    placement: Sequence[tuple[str, str]],
    output: str,
    *,
    last: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """The ``#SBATCH`` lines of a job, every value quoted as sbatch reads it back.

    In order: the job name, ``placement`` (``--nodes``, ``--array``...), one task per node, the
    GPUs, the resources asked for, the output file, requeue or not, ``last`` (each directive a
    ``(name, value)`` pair, value ``""`` for a bare flag), then ``--sbatch-arg`` as given.
    """
    directives = [("--job-name", options.resolved_job_name), *placement]
    directives.append(("--ntasks-per-node", "1"))
    if options.gpus_per_node:
        directives.append(("--gres", f"gpu:{options.gpus_per_node}"))
    optional = (
        ("--cpus-per-task", options.cpus_per_node),
        ("--mem", options.mem),
        ("--partition", options.partition),
        ("--time", options.time),
        ("--qos", options.qos),
        ("--account", options.account),
    )
    directives += [(name, str(value)) for name, value in optional if value is not None]
    directives += [
        ("--output", output),
        ("--open-mode", "append"),
        ("--requeue" if options.requeue else "--no-requeue", ""),
        *last,
    ]
    lines = [
        f"#SBATCH {name}={sbatch_quote(value)}" if value else f"#SBATCH {name}"
        for name, value in directives
    ]
    return lines + [f"#SBATCH {_quote_option(arg)}" for arg in options.sbatch_args]


def _script(
    options: SbatchOptions,
    head: list[str],
    directives: list[tuple[str, str]],
    output: str,
    *,
    stagger: bool,
    array: bool,
) -> str:
    signal = [("--signal", f"B:USR1@{options.signal_grace_s}")]
    lines = ["#!/bin/bash", *head, *sbatch_header(options, directives, output, last=signal)]
    if options.setup:
        lines += ["", "# setup", *options.setup]
    lines += ["", *_exports(options)]
    if not array:
        lines += [
            "# submitted from inside an array task, a job inherits that task's array variables:",
            "# they would make the agents name (signal, requeue) the wrong job",
            "unset " + " ".join(_ARRAY_VARIABLES),
        ]
    if stagger:
        window_ms = round(options.stagger_s * 1000)
        lines += [
            "",
            f"# start within {options.stagger_s:g} s, spread by array index, so that many "
            "elements do not reach the sweep directory at once",
            f"delay_ms=$(( (${{SLURM_ARRAY_TASK_ID:-0}} * {_STAGGER_STEP} % 1000) "
            f"* {window_ms} / 1000 ))",
            "sleep \"$((delay_ms / 1000)).$(printf '%03d' $((delay_ms % 1000)))\"",
        ]
    lines += [
        "",
        "# one agent per node (srun); on USR1 its runs are marked preempted and the job",
        "# requeues itself so that they resume",
        "exec " + shlex.join(_agent_argv(options)),
        "",
    ]
    return "\n".join(lines)


def _quote_option(arg: str) -> str:
    name, sep, value = arg.partition("=")
    return f"{name}={sbatch_quote(value)}" if sep else name


def _exports(options: SbatchOptions) -> Iterable[str]:
    env = {
        "PYTHONUNBUFFERED": "1",
        "SWEEPHERD_SIGNAL_GRACE_S": str(options.signal_grace_s),
        **options.env,
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in env.items()]


def _agent_argv(options: SbatchOptions) -> list[str]:
    argv = [options.python, "-m", "sweepherd", "agent", str(options.sweep_dir), "--all-nodes"]
    if options.gpus_per_node:
        argv += ["--gpus", "auto", "--trials-per-gpu", str(options.trials_per_gpu)]
    elif options.slots is not None:
        argv += ["--slots", str(options.slots)]
    return argv + list(options.agent_args)
