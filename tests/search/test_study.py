"""How runs become Optuna trials: W&B's imputation rules, with the run states sweepherd has."""

from __future__ import annotations

import logging
import math

import pytest
from optuna.samplers import RandomSampler
from optuna.trial import TrialState

from sweepherd.config._model import Metric
from sweepherd.runs import RunState
from sweepherd.search._space import dimensions
from sweepherd.search._study import build_study, quiet_optuna

RAW = {"method": "bayes", "parameters": {"x": {"min": 0.0, "max": 1.0}}}


def _trials(make_config, runs, warp=False, **metric):
    """(state, value) of each trial; the runs' own values unless ``warp``."""
    config = make_config({**RAW, "metric": {"name": "m", **metric}})
    study = build_study(config, dimensions(config), runs, RandomSampler(seed=0), warp=warp)
    return [(t.state, t.value) for t in study.get_trials(deepcopy=False)]


def test_each_state_becomes_the_trial_wandb_would_use(make_config, make_run):
    R = RunState
    runs = [
        make_run({"x": 0.1}, R.FINISHED, 2.0),
        make_run({"x": 0.2}, R.FINISHED, 5.0),  # the worst finite metric (minimize)
        make_run({"x": 0.3}, R.FINISHED, None),  # -> worst
        make_run({"x": 0.4}, R.FINISHED, math.inf),  # non-finite -> worst
        make_run({"x": 0.5}, R.FAILED, 0.5),  # failed -> worst, whatever it logged
        make_run({"x": 0.6}, R.STOPPED, 3.0),
        make_run({"x": 0.7}, R.KILLED, 4.0),
        make_run({"x": 0.8}, R.KILLED, None),  # left out
        make_run({"x": 0.9}, R.RUNNING, 1.0),  # pending, metric so far ignored
        make_run({"x": 0.15}, R.PREEMPTED, None),
        make_run({"x": 0.25}, R.LOST, None),
    ]
    C, P = TrialState.COMPLETE, TrialState.RUNNING
    assert _trials(make_config, runs) == [
        (C, 2.0), (C, 5.0), (C, 5.0), (C, 5.0), (C, 5.0), (C, 3.0), (C, 4.0),
        (P, None), (P, None), (P, None),
    ]  # fmt: skip


def test_worst_depends_on_the_goal(make_config, make_run):
    runs = [
        make_run({"x": 0.1}, metric=2.0),
        make_run({"x": 0.2}, metric=5.0),
        make_run({"x": 0.3}),
    ]
    assert _trials(make_config, runs, goal="maximize")[2] == (TrialState.COMPLETE, 2.0)
    assert _trials(make_config, runs, goal="minimize")[2] == (TrialState.COMPLETE, 5.0)


def test_without_any_metric_imputed_runs_are_left_out(make_config, make_run):
    runs = [
        make_run({"x": 0.1}, RunState.FAILED),
        make_run({"x": 0.2}),
        make_run({"x": 0.3}, RunState.RUNNING),
    ]
    assert _trials(make_config, runs) == [(TrialState.RUNNING, None)]


@pytest.mark.parametrize("impute", ["best", "latest"])
def test_impute_best_or_latest_uses_the_runs_own_metric(impute, make_config, make_run):
    runs = [
        make_run({"x": 0.1}, metric=9.0),
        make_run({"x": 0.2}, RunState.FAILED, 0.5),
        make_run({"x": 0.3}, RunState.FAILED, None),  # nothing of its own: left out
    ]
    assert _trials(make_config, runs, impute=impute) == [
        (TrialState.COMPLETE, 9.0),
        (TrialState.COMPLETE, 0.5),
    ]


def test_impute_while_running_counts_running_runs_with_their_metric(make_config, make_run):
    runs = [
        make_run({"x": 0.1}, metric=9.0),
        make_run({"x": 0.2}, RunState.RUNNING, 0.5),
        make_run({"x": 0.3}, RunState.RUNNING, None),
    ]
    C, P = TrialState.COMPLETE, TrialState.RUNNING
    assert _trials(make_config, runs, impute_while_running="latest") == [
        (C, 9.0),
        (C, 0.5),
        (P, None),
    ]
    assert _trials(make_config, runs, impute_while_running="worst") == [
        (C, 9.0),
        (C, 0.5),
        (C, 9.0),
    ]


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_the_sampler_sees_the_worse_half_compressed(goal, make_config, make_run):
    sign = 1.0 if goal == "minimize" else -1.0
    metrics = [sign * v for v in (0.3, 0.4, 0.5, 0.6, 0.7, 1e6)]
    runs = [make_run({"x": i / 10}, metric=m) for i, m in enumerate(metrics)]
    runs.append(make_run({"x": 0.9}, RunState.FAILED))  # imputed: the worst, also compressed
    runs.append(make_run({"x": 0.95}, RunState.RUNNING))
    trials = _trials(make_config, runs, warp=True, goal=goal)
    values = [v for _, v in trials]
    assert values[:3] == metrics[:3]  # the better half as the runs have it
    assert abs(values[5]) < 10 and values[6] == values[5]  # 1e6 compressed, and imputed alike
    assert trials[7] == (TrialState.RUNNING, None)
    ranked = sorted(range(7), key=lambda i: sign * values[i])
    assert ranked[:5] == [0, 1, 2, 3, 4]  # same order as the runs


@pytest.mark.parametrize(
    "name", ["optuna.storages._in_memory", "optuna._gp.batched_lbfgsb", "optuna._gp.gp"]
)
def test_optunas_per_call_chatter_is_quiet_but_errors_show(name):
    logger = logging.getLogger(name)
    before = logger.level
    with quiet_optuna():
        assert not logger.isEnabledFor(logging.WARNING)
        assert logger.isEnabledFor(logging.ERROR)
    assert logger.level == before  # as it was, after


def test_the_metric_model_has_the_impute_fields():
    """Guards the fields this module reads (they belong to the config package)."""
    assert Metric("m").impute == "worst" and Metric("m").impute_while_running is None
