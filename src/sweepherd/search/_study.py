"""An in-memory Optuna study rebuilt from the sweep's runs, so a sampler can be asked.

Samplers keep no state between calls: the study is rebuilt on every call from every run of the
sweep, which is what lets many agents share one sweep directory. Runs become trials as W&B's
Bayesian search treats them (``sweeps/bayes_search.py``):

=================================  ==================================================
run state                          trial
=================================  ==================================================
finished, stopped (with a metric)  COMPLETE with the metric
finished, stopped (no metric)      COMPLETE with the worst metric seen (W&B's default
                                   ``impute: worst``)
failed                             COMPLETE with the worst metric seen (so the sampler
                                   keeps away from points that crash)
killed (sweep cancelled)           COMPLETE with its metric if it logged one, else left out
running, preempted, lost           RUNNING: pending, so ``constant_liar`` keeps parallel
                                   agents apart (preempted and lost runs will run again)
=================================  ==================================================

"The worst metric seen" is the worst finite metric of any ended run; while there is none,
runs that would need it are left out. A non-finite metric counts as missing.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sweepherd.config._model import Metric, SweepConfig, flatten
from sweepherd.runs import Run, RunState
from sweepherd.search._space import Dimension, distributions

_PENDING = frozenset({RunState.RUNNING, RunState.PREEMPTED, RunState.LOST})
_IMPUTED = frozenset({RunState.FINISHED, RunState.STOPPED, RunState.FAILED})
_STUDY_NAME = "sweepherd"
# Optuna trials carry timestamps; the search is pure, so they get a fixed one, never the clock.
_EPOCH = datetime(2000, 1, 1)


class _RunTrial(FrozenTrial):
    """A trial whose deep copy is shallow.

    ``InMemoryStorage`` deep-copies every trial it is given, which for a thousand runs costs
    more than the sampling itself. These trials are built here, never mutated after, and
    discarded with the study, so sharing their parts is safe.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _RunTrial:
        return copy.copy(self)


def build_study(
    config: SweepConfig,
    dims: Sequence[Dimension],
    runs: Sequence[Run],
    sampler: BaseSampler,
) -> optuna.Study:
    """A fresh in-memory study holding one trial per usable run (see the module doc)."""
    metric = _metric(config)
    storage = InMemoryStorage()
    with _quiet_optuna():
        storage.create_new_study([_direction(metric)], study_name=_STUDY_NAME)
    study = optuna.Study(study_name=_STUDY_NAME, storage=storage, sampler=sampler)
    worst = _worst(metric, runs)
    dists = distributions(dims)
    trials: list[FrozenTrial] = []
    for run in runs:
        state, value = _trial_outcome(run, worst)
        if state is None:
            continue
        params = _internal_params(config, dims, run)
        if params is None:
            continue
        trials.append(
            _RunTrial(
                number=len(trials),
                state=state,
                value=value,
                datetime_start=_EPOCH,
                datetime_complete=None if state == TrialState.RUNNING else _EPOCH,
                params=params,
                distributions=dists,
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=len(trials),
            )
        )
    study.add_trials(trials)
    return study


def _trial_outcome(run: Run, worst: float | None) -> tuple[TrialState | None, float | None]:
    if run.state in _PENDING:
        return TrialState.RUNNING, None
    metric = _finite(run.metric)
    if run.state == RunState.FAILED:
        metric = None  # W&B imputes failed runs whatever they logged
    if metric is not None:
        return TrialState.COMPLETE, metric
    if run.state in _IMPUTED and worst is not None:
        return TrialState.COMPLETE, worst
    return None, None


def _worst(metric: Metric, runs: Sequence[Run]) -> float | None:
    values = [v for r in runs if r.state.is_terminal and (v := _finite(r.metric)) is not None]
    if not values:
        return None
    return max(values) if metric.goal == "minimize" else min(values)


def _internal_params(
    config: SweepConfig, dims: Sequence[Dimension], run: Run
) -> dict[str, Any] | None:
    flat = flatten(run.params, config.parameters)
    params: dict[str, Any] = {}
    for d in dims:
        if d.param.path not in flat:
            return None
        x = d.to_internal(flat[d.param.path])
        if x is None:
            return None
        params[d.name] = x
    return params


def _metric(config: SweepConfig) -> Metric:
    if config.metric is None:  # checked by the caller; keeps the type checker honest
        raise ValueError("bayes needs a metric")
    return config.metric


def _direction(metric: Metric) -> StudyDirection:
    return StudyDirection.MAXIMIZE if metric.goal == "maximize" else StudyDirection.MINIMIZE


def _finite(x: float | None) -> float | None:
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Silence "A new study created in memory" (logged at INFO on every call otherwise)."""
    logger = logging.getLogger("optuna.storages._in_memory")
    old = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(old)
