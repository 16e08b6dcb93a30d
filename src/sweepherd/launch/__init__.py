"""Launchers start agents: ``local`` on this machine, ``slurm`` through sbatch."""
