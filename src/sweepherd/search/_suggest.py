"""The entry points the agent calls: the next points, and whether the sweep may go on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sweepherd.config._model import SweepConfig
from sweepherd.runs import Run, RunState
from sweepherd.search._method import method


def suggest(
    config: SweepConfig,
    runs: Sequence[Run],
    n: int = 1,
    rng: np.random.Generator | None = None,
) -> list[dict[str, Any]]:
    """Up to ``n`` new parameter dicts for the sweep's next runs, from ``config.method``.

    ``runs`` is every run of the sweep, in any state; running ones count as pending, so
    parallel agents get different points. Each dict is nested as ``wandb.config`` holds it and
    made of plain Python values. Fewer than ``n`` (possibly none) come back only when the
    method has nothing left: a grid whose every point some run already has. Whether new runs
    may start at all is :func:`done_reason`'s question, not this one's.

    ``rng`` is the only source of randomness (a fresh unseeded one when None): pass a seeded
    generator for reproducible suggestions.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if rng is None:
        rng = np.random.default_rng()
    return method(config.method).suggest(config, runs, n, rng)


def warm_up(config: SweepConfig) -> None:
    """Import what ``config.method`` will need (Optuna, and torch for bayes's GP phase).

    The agent calls this before it takes the sweep's lock, so that the first suggestion made
    under the lock does not also pay for importing torch (seconds, more on a network disk).
    """
    if config.method == "bayes":
        from sweepherd.search import _samplers, _study  # Optuna, and its samplers

        del _study
        if _samplers.torch_available():  # imports torch once, if it is installed
            _samplers.gp_sampler(0, {})  # and Optuna's GP internals the GP phase uses


def done_reason(config: SweepConfig, runs: Sequence[Run]) -> str | None:
    """Why no new run may start, as a short sentence, or None if runs may start.

    - ``run_cap`` reached: every run counts, whatever its state (as W&B counts them).
    - a finished run's metric met ``metric.target`` (at or beyond it, in the goal's direction).

    Grid exhaustion is not a reason here: it shows as :func:`suggest` returning ``[]``.
    """
    if config.run_cap is not None and len(runs) >= config.run_cap:
        return f"run_cap of {config.run_cap} reached"
    metric = config.metric
    if metric is not None and metric.target is not None:
        for run in runs:
            if (
                run.state == RunState.FINISHED
                and isinstance(run.metric, (int, float))
                and metric.reached_target(run.metric)
            ):
                return (
                    f"metric {metric.name} reached target {metric.target:g} in run {run.id} "
                    f"({run.metric:g})"
                )
    return None
