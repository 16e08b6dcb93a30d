"""The ``sweepherd`` command: a lazy group of subcommands and the one error boundary.

Each subcommand lives in its own module and is imported only when it is called, so
``sweepherd agent`` on a compute node does not pay for matplotlib or boto3. Errors derived from
:class:`~sweepherd.errors.SweepherdError` are printed here, once, as ``error: ...`` without a
traceback; ``--debug`` (or ``SWEEPHERD_DEBUG=1``) re-raises them so the traceback shows.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

import click

from sweepherd import __version__
from sweepherd.errors import ExitStatus, SweepherdError

#: name -> ("module:attribute", one-line help) of each subcommand, in the order of a user's day.
#: The help line is here so that ``sweepherd --help`` imports no subcommand module.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("sweepherd.cli.validate:validate", "Check a sweep config; list every problem."),
    "run": ("sweepherd.cli.run:run", "Create a sweep and run it on this machine with N agents."),
    "create": ("sweepherd.cli.create:create", "Create a sweep and start no agent (`wandb sweep`)."),
    "agent": ("sweepherd.cli.agent:agent", "Run an agent: claim runs until the sweep is done."),
    "status": ("sweepherd.cli.status:status", "Show a sweep's runs and their states."),
    "watch": ("sweepherd.cli.watch:watch", "Watch a sweep live: progress, runs, failures, jobs."),
    "ls": ("sweepherd.cli.ls:ls", "List the sweeps under a folder with their state."),
    "best": ("sweepherd.cli.best:best", "Show the best runs of a sweep."),
    "logs": ("sweepherd.cli.logs:logs", "Show a run's output; -f follows it."),
    "export": ("sweepherd.cli.export:export", "Export a sweep's runs as CSV, JSON or Parquet."),
    "plot": ("sweepherd.cli.plot:plot", "Plot a sweep: best so far, parameters, curves."),
    "submit": (
        "sweepherd.cli.submit:submit",
        "Create a sweep and submit its agents to Slurm as one job.",
    ),
    "scale": ("sweepherd.cli.scale:scale", "Add nodes to a sweep on Slurm with a job array."),
    "cancel": ("sweepherd.cli.cancel:cancel", "Cancel a sweep: no new runs, running ones stop."),
    "sync": ("sweepherd.cli.sync:sync", "Upload a sweep's ended offline runs to W&B, once each."),
    "aws": ("sweepherd.cli.aws:aws", "A burstable Slurm cluster on AWS: init, deploy, destroy."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, short_help) for name, (_, short_help) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--debug",
    is_flag=True,
    envvar="SWEEPHERD_DEBUG",
    help="Show the full traceback of an error.",
)
@click.version_option(__version__, prog_name="sweepherd")
def cli(debug: bool) -> None:
    """Run W&B-style hyperparameter sweeps on Slurm or on this machine, with no sweep server.

    \b
    Start here:
      sweepherd validate sweep.yaml        check a sweep config, listing every problem
      sweepherd run sweep.yaml --agents 4  create a sweep and run it on this machine
      sweepherd status SWEEP               see how far it is
    """


def _debug_requested(argv: Sequence[str]) -> bool:
    if os.environ.get("SWEEPHERD_DEBUG", "").lower() in ("1", "true", "yes"):
        return True
    # Only flags before the subcommand belong to the group; --debug is accepted anywhere for
    # convenience since no subcommand has its own --debug.
    return "--debug" in argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script. Returns the exit status instead of raising."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    if debug and "--debug" in args:
        args.remove("--debug")
        args.insert(0, "--debug")
    try:
        result = cli.main(args=args, prog_name="sweepherd", standalone_mode=False)
    except SweepherdError as exc:
        if debug:
            raise
        _print_error(str(exc))
        return int(exc.exit_status)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        _print_error("aborted")
        return int(ExitStatus.INTERRUPTED)
    except click.ClickException as exc:
        if debug:
            raise
        exc.show()
        return int(exc.exit_code)
    except KeyboardInterrupt:
        if debug:
            raise
        _print_error("interrupted")
        return int(ExitStatus.INTERRUPTED)
    return int(result) if isinstance(result, int) else int(ExitStatus.OK)


def _print_error(message: str) -> None:
    click.echo(f"error: {message}", err=True)


if __name__ == "__main__":  # pragma: no cover - `python -m sweepherd.cli.main`
    sys.exit(main())
