"""Early termination: which running runs to stop because others already do better.

W&B's hyperband (``early_terminate: {type: hyperband, min_iter | max_iter + s, eta,
strict}``) as a pure function of the metric's history in every run of the sweep. An
"iteration" is one logged value of the metric, so the caller passes each run's history in log
order (the agent publishes it in ``runs/<id>/live.json``).

>>> histories = {"a": [0.9, 0.8], "b": [0.5, 0.4], "c": [1.2, 1.1]}
>>> to_stop(config, histories, running={"a", "c"})  # doctest: +SKIP
{'c'}
"""

from sweepherd.early_terminate._hyperband import Stop, bands, stops, thresholds, to_stop

__all__ = ["Stop", "bands", "stops", "thresholds", "to_stop"]
