"""Launchers start agents: ``local`` on this machine, ``slurm`` through sbatch.

:func:`prepare_sweep` is what every launcher does first: validate the config, check the
program, and create the sweep before any agent can start.
"""

from sweepherd.launch._prepare import load_with_overrides, prepare_sweep, resolve_workdir

__all__ = ["load_with_overrides", "prepare_sweep", "resolve_workdir"]
