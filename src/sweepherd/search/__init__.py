"""Search methods: which parameters the sweep's next runs get.

Pure functions of (config, past runs), with W&B's semantics: ``grid`` enumerates every
combination in W&B's order and ends when all are taken, ``random`` samples every distribution
as W&B does, ``bayes`` asks a model-based Optuna sampler (TPE) rebuilt from the runs. They read
no files and no clock; their only randomness is the ``rng`` passed in.

>>> suggest(config, runs, n=2, rng=numpy.random.default_rng(0))  # doctest: +SKIP
[{'lr': 0.0012, 'optimizer': {'name': 'adam'}}, {'lr': 0.031, 'optimizer': {'name': 'sgd'}}]
"""

from sweepherd.search._grid import grid_size
from sweepherd.search._method import METHODS, SearchMethod
from sweepherd.search._suggest import done_reason, suggest, warm_up

__all__ = ["METHODS", "SearchMethod", "done_reason", "grid_size", "suggest", "warm_up"]
