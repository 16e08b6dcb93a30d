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
