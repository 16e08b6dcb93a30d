"""sweepherd: W&B-style hyperparameter sweeps on Slurm or one machine, with no sweep server.

The package root is kept light on purpose: a training script imports it for :func:`log` and
:func:`params`, and should not pay for numpy or optuna to do so.
"""

from sweepherd.client import log, params

__version__ = "0.1.0"

__all__ = ["__version__", "log", "params"]
