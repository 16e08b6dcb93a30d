"""The Slurm resource options shared by ``sweepherd submit`` and ``sweepherd scale``.

Every option defaults to ``None`` (not given): ``submit`` then takes
:class:`~sweepherd.launch.slurm.SbatchOptions`' default, and ``scale`` the value recorded when
the sweep was submitted.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sweepherd.errors import ConfigError

if TYPE_CHECKING:
    from sweepherd.launch.slurm import SbatchOptions

F = TypeVar("F", bound=Callable[..., Any])

#: SbatchOptions field -> the command-line option that sets it, for error messages.
FLAGS = {
    "nodes": "--nodes",
    "gpus_per_node": "--gpus-per-node",
    "trials_per_gpu": "--trials-per-gpu",
    "slots": "--slots",
    "cpus_per_task": "--cpus-per-task",
    "mem": "--mem",
    "partition": "--partition",
    "time": "--time",
    "qos": "--qos",
    "account": "--account",
    "job_name": "--job-name",
    "output": "--output",
    "setup": "--setup",
    "sbatch_args": "--sbatch-arg",
    "signal_grace_s": "--signal-grace",
    "requeue": "--no-requeue",
    "python": "--python",
    "agent_args": "--agent-args",
    "stagger_s": "--stagger",
    "array_max_parallel": "--max-parallel",
}
#: command parameter -> SbatchOptions field, where the two names differ (a unit in the field).
_RENAMED = {
    "signal_grace": "signal_grace_s",
    "stagger": "stagger_s",
    "max_parallel": "array_max_parallel",
}
_PARAMS = {f: f for f in FLAGS if f not in _RENAMED.values()} | _RENAMED
#: How SbatchOptions' ConfigError begins.
_OPTIONS_ERROR = "invalid Slurm options"
_FIELD_RE = re.compile(r"^(\w+)(?:\[\d+\])?: ")

_OPTIONS: list[Callable[[F], F]] = [
    click.option(
        "--gpus-per-node", type=int, default=None, help="GPUs per node (--gres=gpu:N); default 0."
    ),
    click.option(
        "--trials-per-gpu", type=int, default=None, help="Trials sharing each GPU; default 1."
    ),
    click.option(
        "--slots",
        type=int,
        default=None,
        help="Nodes without GPUs: trials at once per node; default 1.",
    ),
    click.option(
        "--cpus-per-task",
        type=int,
        default=None,
        help="CPUs for each node's agent and its trials; default one per trial.",
    ),
    click.option("--mem", default=None, help="Memory per node, as Slurm writes it (64G)."),
    click.option("--partition", "-p", default=None, help="Slurm partition."),
    click.option("--time", "-t", default=None, help="Time limit, e.g. 4:00:00 or 1-12:00."),
    click.option("--qos", default=None, help="Slurm QOS."),
    click.option("--account", "-A", default=None, help="Slurm account to charge."),
    click.option("--job-name", "-J", default=None, help="Job name; default sweepherd-<sweep id>."),
    click.option(
        "--output",
        "-o",
        default=None,
        help="Slurm output file pattern; default <sweep>/slurm/%j.out (arrays %A_%a.out).",
    ),
    click.option(
        "--setup",
        multiple=True,
        metavar="LINE",
        help="Shell line run before the agents (module load, venv activate); repeatable.",
    ),
    click.option(
        "--sbatch-arg",
        "sbatch_args",
        multiple=True,
        metavar="--NAME=VALUE",
        help="Any other sbatch option, e.g. --sbatch-arg=--constraint=a100; repeatable.",
    ),
    click.option(
        "--signal-grace",
        type=int,
        default=None,
        metavar="SECONDS",
        help="Slurm's warning signal comes this long before the time limit; default 120.",
    ),
    click.option(
        "--requeue/--no-requeue",
        default=None,
        help="Requeue the job when its agents are stopped with work left (default: requeue).",
    ),
    click.option(
        "--agent-args",
        multiple=True,
        metavar="ARGS",
        help='More `sweepherd agent` options, e.g. "--lost-after 120 --wandb-mode online".',
    ),
    click.option(
        "--python",
        default=None,
        metavar="PATH",
        help="Python on the nodes that runs sweepherd; default this one.",
    ),
]


def slurm_options(func: F) -> F:
    """Add the shared Slurm options to a command."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def settings_from(params: dict[str, Any]) -> dict[str, Any]:
    """The SbatchOptions fields the user gave, from a command's parameters (drops the rest)."""
    settings: dict[str, Any] = {}
    for param, field in _PARAMS.items():
        value = params.get(param)
        if param == "agent_args" and value:
            value = tuple(arg for text in value for arg in shlex.split(text))
        if value is not None and value != ():
            settings[field] = value
    return settings


def flagged(exc: ConfigError) -> ConfigError:
    """The same error with each problem named by its command-line option, not its field.

    One problem gives a one-line error; several keep one line each. Errors other than
    invalid Slurm options (a config file's) are returned as they are.
    """
    if not exc.message.startswith(_OPTIONS_ERROR) or not exc.violations:
        return exc
    problems = [_flag(v) for v in exc.violations]
    if len(problems) == 1:
        return ConfigError(f"invalid option {problems[0]}", hint=exc.hint)
    return ConfigError("invalid options:", violations=problems, hint=exc.hint)


def _flag(violation: str) -> str:
    match = _FIELD_RE.match(violation)
    if match is None or match.group(1) not in FLAGS:
        return violation
    return f"{FLAGS[match.group(1)]}: {violation[match.end() :]}"


def job_summary(n_nodes: int, options: SbatchOptions | None, *, array: bool) -> str:
    """``"2 nodes x 4 trial(s) at once"`` for the messages of submit and scale."""
    per_node = 1
    if options is not None:
        per_node = options.gpus_per_node * options.trials_per_gpu or options.slots or 1
    unit = "one-node element" if array else "node"
    return f"{n_nodes} {unit}{'s' if n_nodes != 1 else ''} x {per_node} trial(s) at once"
