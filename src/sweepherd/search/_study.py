"""An in-memory Optuna study rebuilt from the sweep's runs, so a sampler can be asked.

Samplers keep no state between calls: the study is rebuilt on every call from every run of the
sweep, which is what lets many agents share one sweep directory. Runs become trials as W&B's
Bayesian search treats them (``sweeps/bayes_search.py``):

==========================  =============================================================
run state                   trial
==========================  =============================================================
finished, stopped           COMPLETE with its best metric value; without one, COMPLETE
                            with the value ``metric.impute`` says
failed                      COMPLETE with the value ``metric.impute`` says (for ``worst``,
                            whatever it logged), so the sampler keeps away from crashes
killed (sweep cancelled)    COMPLETE with its best value if it logged one, else left out
running                     RUNNING (pending), so ``constant_liar`` keeps parallel agents
                            apart; with ``metric.impute_while_running`` set, COMPLETE with
                            its best value so far (or the worst, for ``worst``) when it has one
preempted, lost             RUNNING: they will run again with the same parameters
==========================  =============================================================

The values the trials get are then passed through a monotone warp that compresses the worse
half of them (``_warp.py``), so a diverged run does not flatten the model's view of the good
ones; the order of the runs is kept.

A run's value is the best one it logged (``Run.metric_range`` and its summary value
``Run.metric``, in the goal's direction), not its last: W&B's ``metric_extremum``. A validation
loss that rose again as the model overfit counts at its lowest, as W&B's bayes counts it.

``metric.impute``: ``worst`` (the default) is the worst value any ended run logged;
``best`` is the run's own best value, ``latest`` the last finite value in its history
(``Run.metric_last``; its summary value for runs recorded before sweepherd kept it). Where W&B
would fall back to ``0.0`` (no such value exists), the run is left out instead: a made-up value
on an unknown scale would mislead the sampler. A non-finite metric counts as missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sweepherd.config._model import Metric, SweepConfig
from sweepherd.runs import Run, RunState, finite_number
from sweepherd.search._space import Dimension, distributions
from sweepherd.search._warp import compress_worse_half

_STUDY_NAME = "sweepherd"
# Optuna trials carry timestamps; the search is pure, so they get a fixed one, never the clock.
_EPOCH = datetime(2000, 1, 1)


class _RunTrial(FrozenTrial):
    """A trial that is its own deep copy.

    ``InMemoryStorage`` deep-copies every trial it is given, which for a thousand runs costs
    more than the sampling itself. These trials are built here with the number and id the
    storage gives them, never changed after (the storage replaces a trial to update it), and
    discarded with the study, so sharing them is safe.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _RunTrial:
        return self


def build_study(
    config: SweepConfig,
    dims: Sequence[Dimension],
    runs: Sequence[Run],
    sampler: BaseSampler,
    *,
    warp: bool = True,
) -> optuna.Study:
    """A fresh in-memory study holding one trial per usable run (see the module doc).

    ``warp``: give the trials their values through ``_warp.compress_worse_half`` (the
    default), as the sampler should see them; False keeps the runs' own values.
    """
    metric = _metric(config)
    storage = InMemoryStorage()
    with quiet_optuna():
        study_id = storage.create_new_study([_direction(metric)], study_name=_STUDY_NAME)
    study = optuna.Study(study_name=_STUDY_NAME, storage=storage, sampler=sampler)
    worst = _worst(metric, runs)
    dists = distributions(dims)
    converters = [(d.name, d.param.path, d.converter()) for d in dims]
    rows: list[tuple[TrialState, float | None, dict[str, Any]]] = []
    for run in runs:
        state, value = _trial_outcome(run, metric, worst)
        if state is None:
            continue
        params = _internal_params(converters, run)
        if params is None:
            continue
        rows.append((state, value, params))
    values = iter(_model_values([v for _, v, _ in rows if v is not None], metric, warp))
    for number, (state, value, params) in enumerate(rows):
        # Straight into the storage: these trials are valid by construction, and the checks
        # of Study.add_trials cost more than the sampling at a thousand runs.
        storage.create_new_trial(
            study_id,
            _RunTrial(
                number=number,
                state=state,
                value=None if value is None else next(values),
                datetime_start=_EPOCH,
                datetime_complete=None if state == TrialState.RUNNING else _EPOCH,
                params=params,
                distributions=dists,
                user_attrs={},
                system_attrs={},
                intermediate_values={},
                trial_id=number,
            ),
        )
    return study


def _model_values(values: list[float], metric: Metric, warp: bool) -> list[float]:
    """The completed trials' values as the sampler sees them (see ``_warp.py``)."""
    return compress_worse_half(values, metric.goal) if warp else values


def _trial_outcome(
    run: Run, metric: Metric, worst: float | None
) -> tuple[TrialState | None, float | None]:
    """The trial state and value a run becomes (see the module doc); None: left out."""
    best = _extreme(run, metric, best=True)
    if run.state == RunState.RUNNING:
        strategy = metric.impute_while_running
        if strategy is None:
            return TrialState.RUNNING, None
        value = best if best is not None else (worst if strategy == "worst" else None)
        return (TrialState.RUNNING, None) if value is None else (TrialState.COMPLETE, value)
    if run.state in (RunState.PREEMPTED, RunState.LOST):
        return TrialState.RUNNING, None
    if run.state == RunState.KILLED:
        return (None, None) if best is None else (TrialState.COMPLETE, best)
    if run.state in (RunState.FINISHED, RunState.STOPPED) and best is not None:
        return TrialState.COMPLETE, best
    # finished or stopped without a metric, or failed: impute
    imputed = {"worst": worst, "best": best, "latest": _latest(run)}
    value = imputed[metric.impute]
    return (None, None) if value is None else (TrialState.COMPLETE, value)


def _latest(run: Run) -> float | None:
    """W&B's ``impute: latest``: the last finite value the run logged."""
    return run.metric_last if run.metric_last is not None else finite_number(run.metric)


def _worst(metric: Metric, runs: Sequence[Run]) -> float | None:
    """The worst value any ended run logged (W&B's imputed value for a failed run)."""
    ended = (_extreme(r, metric, best=False) for r in runs if r.state.is_terminal)
    values = [v for v in ended if v is not None]
    if not values:
        return None
    return max(values) if metric.goal == "minimize" else min(values)


def _extreme(run: Run, metric: Metric, *, best: bool) -> float | None:
    """The best (or worst) value of the metric the run logged, its summary value included, as
    W&B's ``metric_extremum`` takes it; None if it logged none."""
    logged = (finite_number(x) for x in (run.metric, *(run.metric_range or ())))
    values = [v for v in logged if v is not None]
    if not values:
        return None
    return min(values) if (metric.goal == "minimize") == best else max(values)


def _internal_params(
    converters: Sequence[tuple[str, tuple[str, ...], Callable[[Any], Any]]], run: Run
) -> dict[str, Any] | None:
    """The run's values as Optuna holds them; None if the space cannot hold one of them."""
    params: dict[str, Any] = {}
    for name, path, convert in converters:
        node: Any = run.params
        for key in path:
            if not isinstance(node, Mapping) or key not in node:
                return None
            node = node[key]
        x = convert(node)
        if x is None:
            return None
        params[name] = x
    return params


def _metric(config: SweepConfig) -> Metric:
    if config.metric is None:  # checked by the caller; keeps the type checker honest
        raise ValueError("bayes needs a metric")
    return config.metric


def _direction(metric: Metric) -> StudyDirection:
    return StudyDirection.MAXIMIZE if metric.goal == "maximize" else StudyDirection.MINIMIZE


#: Optuna loggers whose INFO/WARNING lines are noise for a sweep: "A new study created in
#: memory" on every call, the GP sampler's note that the optional ``greenlet`` is missing, and
#: its note that fitting the kernel failed numerically (near-duplicate points, common once a
#: sweep converges) and the default kernel is used for this suggestion: nothing a user can act on.
_NOISY_LOGGERS = ("optuna.storages._in_memory", "optuna._gp.batched_lbfgsb", "optuna._gp.gp")


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-call chatter (see ``_NOISY_LOGGERS``); errors still show."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    old = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, old, strict=True):
            logger.setLevel(level)
