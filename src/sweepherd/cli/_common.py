"""Options and helpers shared by the subcommands: the ``SWEEP`` argument and ``--dir``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: Where sweeps live when ``--dir`` is not given. Relative to the working directory, like W&B's
#: ``./wandb`` folder; on a cluster point it at the shared filesystem.
DEFAULT_ROOT = "sweeps"


def root_option(func: F) -> F:
    """``--dir``: the folder that holds the sweep directories (env ``SWEEPHERD_DIR``)."""
    return click.option(
        "--dir",
        "root",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_ROOT,
        envvar="SWEEPHERD_DIR",
        show_default=True,
        show_envvar=True,
        help="Folder holding the sweep directories; put it on the shared filesystem on a cluster.",
    )(func)


def sweep_argument(func: F) -> F:
    """``SWEEP``: a sweep directory, or a sweep id under ``--dir``."""
    return click.argument("sweep", metavar="SWEEP")(root_option(func))


def setup_logging(verbose: int = 0, quiet: bool = False, prefix: str = "sweepherd") -> None:
    """Log sweepherd's own messages to stderr: warnings always, progress with -v."""
    import logging

    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {prefix} %(levelname).1s %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger("sweepherd")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def trials_per_gpu_option(func: F) -> F:
    """``--trials-per-gpu``: several small trials may share one GPU."""
    return click.option(
        "--trials-per-gpu", type=int, default=1, show_default=True, help="Trials sharing each GPU."
    )(func)


def trial_options(func: F) -> F:
    """How sweepherd's agents treat their trials: ``--wandb-mode``, ``--lost-after``,
    ``--stop-grace`` (shared by ``run`` and ``agent``)."""
    func = click.option(
        "--stop-grace",
        type=float,
        default=30.0,
        show_default=True,
        metavar="SECONDS",
        help="Time a stopped trial gets between SIGTERM and SIGKILL.",
    )(func)
    func = click.option(
        "--lost-after",
        type=float,
        default=60.0,
        show_default=True,
        metavar="SECONDS",
        help="Re-run a run whose agent has been silent this long.",
    )(func)
    return click.option(
        "--wandb-mode",
        type=click.Choice(["offline", "online", "disabled"]),
        default="offline",
        show_default=True,
        help="WANDB_MODE for the trials (disabled: wandb writes no log, so the metric, "
        "hyperband and bayes see only what the script reports with sweepherd.log).",
    )(func)
