"""Creating a sweep from a config file, with the checks that catch mistakes before any run.

Shared by every launcher: the sweep is always created, complete, before the first agent starts
(W&B users do this by hand with ``wandb sweep``), so agents never race to create it.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sweepherd.config import SweepConfig, load_config, parse_config, run_problems
from sweepherd.errors import ConfigError
from sweepherd.store import SweepStore, create_sweep

_USES_PROGRAM = "${program}"


def load_with_overrides(
    config_path: Path, *, run_cap: int | None = None, name: str | None = None
) -> SweepConfig:
    """Load and validate the config, then apply command-line overrides (validated again)."""
    config = load_config(config_path)
    overrides: dict[str, Any] = {}
    if run_cap is not None:
        overrides["run_cap"] = run_cap
    if name is not None:
        overrides["name"] = name
    if not overrides:
        return config
    return parse_config({**dict(config.raw), **overrides})


def resolve_workdir(config: SweepConfig, config_path: Path) -> Path:
    """Where the trials run: the folder from which ``program`` is found.

    ``wandb agent`` runs the program relative to its working directory. sweepherd looks there
    first and then next to the sweep config, and remembers the answer in the sweep, so agents
    started from anywhere (a Slurm job's folder) run the program the user meant.
    """
    cwd = Path.cwd()
    problems = run_problems(config)
    if problems:
        raise ConfigError(
            f"{config_path} is valid for W&B, but sweepherd cannot run it:", violations=problems
        )
    uses_program = config.command is None or any(_USES_PROGRAM in part for part in config.command)
    if not uses_program or not config.program:
        return cwd
    program = Path(config.program)
    if program.is_absolute():
        if not program.is_file():
            raise ConfigError(f"program {config.program!r} does not exist")
        return cwd
    candidates = [cwd, config_path.resolve().parent]
    for folder in candidates:
        if (folder / program).is_file():
            return folder
    tried = " or ".join(str(c) for c in dict.fromkeys(candidates))
    raise ConfigError(
        f"program {config.program!r} was not found in {tried}",
        hint="run sweepherd from the folder that holds it, or fix `program` in the sweep config",
    )


def prepare_sweep(
    config_path: Path,
    root: Path,
    *,
    run_cap: int | None = None,
    name: str | None = None,
    backend: str = "local",
    extra_meta: Mapping[str, Any] | None = None,
) -> SweepStore:
    """Validate the config, check the program, and create the sweep directory under ``root``."""
    config = load_with_overrides(config_path, run_cap=run_cap, name=name)
    workdir = resolve_workdir(config, config_path)
    meta: dict[str, Any] = {
        "workdir": str(workdir),
        "config_path": str(config_path.resolve()),
    }
    if config.project is None:
        meta["wandb_project"] = default_project(config, workdir)
    return create_sweep(root, config, backend=backend, extra_meta={**meta, **(extra_meta or {})})


def default_project(
    config: SweepConfig, workdir: Path, env: Mapping[str, str] | None = None
) -> str | None:
    """The W&B project of a sweep whose config names none, as ``wandb sweep`` picks it:
    ``$WANDB_PROJECT``, else the one wandb's settings files name (``wandb init`` writes them:
    ``./wandb/settings``, then ``$WANDB_CONFIG_DIR/settings`` or ``~/.config/wandb/settings``),
    else the name of the git repository that holds the program (with the program's folder
    inside it: ``repo-sub_dir``), else None (W&B's "uncategorized")."""
    env = os.environ if env is None else env
    if env.get("WANDB_PROJECT"):
        return env["WANDB_PROJECT"]
    config_dir = Path(env.get("WANDB_CONFIG_DIR") or Path.home() / ".config" / "wandb")
    for settings in (Path.cwd() / "wandb" / "settings", config_dir / "settings"):
        named = _settings_project(settings)
        if named:
            return named
    folder = (workdir / config.program).parent if config.program else workdir
    root = _git_root(folder.resolve())
    if root is None:
        return None
    sub = os.path.relpath(folder.resolve(), root) if config.program else "."
    name = root.name if sub == "." else f"{root.name}-{sub}"
    return name.replace(os.sep, "_")


def _settings_project(path: Path) -> str | None:
    """The ``project`` of a wandb settings file's ``[default]`` section, if it names one."""
    parser = configparser.ConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    return parser.get("default", "project", fallback=None) or None


def _git_root(folder: Path) -> Path | None:
    """The top folder of the git repository ``folder`` is in, if any."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None
