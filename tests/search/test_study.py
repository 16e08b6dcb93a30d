"""How runs become Optuna trials: W&B's imputation rules, with the run states sweepherd has."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings

import numpy as np
import pytest
from optuna.samplers import RandomSampler
from optuna.trial import TrialState

from sweepherd.agent._metrics import JsonlSource, RunMetrics
from sweepherd.config._model import Metric
from sweepherd.live_metric import LiveMetric
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


def test_a_run_counts_at_the_best_value_it_logged_and_is_imputed_at_the_worst(
    make_config, make_run
):
    """W&B's ``metric_extremum``: a validation loss that rose again counts at its lowest."""
    overfit = dataclasses.replace(make_run({"x": 0.1}, metric=0.4), metric_range=(0.3, 2.5))
    plain = make_run({"x": 0.2}, metric=0.6)  # no range recorded (an older journal): its metric
    runs = [overfit, plain, make_run({"x": 0.3}, RunState.FAILED)]
    C = TrialState.COMPLETE
    assert _trials(make_config, runs) == [(C, 0.3), (C, 0.6), (C, 2.5)]
    assert _trials(make_config, runs, goal="maximize") == [(C, 2.5), (C, 0.6), (C, 0.3)]
    failed = dataclasses.replace(runs[0], state=RunState.FAILED)
    assert _trials(make_config, [failed], impute="best") == [(C, 0.3)]
    assert _trials(make_config, [failed], impute="latest") == [(C, 0.4)]
    # It logged NaN last (diverged): `latest` is the last finite value logged, as W&B's.
    diverged = dataclasses.replace(failed, metric=None, metric_last=2.5)
    assert _trials(make_config, [diverged], impute="latest") == [(C, 2.5)]


_ORACLE_STATES = (RunState.FINISHED, RunState.STOPPED, RunState.FAILED, RunState.RUNNING)


@pytest.mark.parametrize("case", range(40))
def test_trial_values_match_wandbs_gp_data(case, tmp_path, make_config, make_run, import_sweeps):
    """Random histories go through the agent's metric reading and the store's fields into the
    study; the values must be W&B's own (``bayes_search._construct_gp_data``) for the same runs.

    A running run has no metric in the journal; with ``impute_while_running`` the claim gives
    it the range in its agent's live file, as here. Left out on purpose, where sweepherd
    differs by design (module doc): runs with no value at all (W&B makes up 0.0) and killed
    runs."""
    rng = np.random.default_rng(case)
    goal = str(rng.choice(["minimize", "maximize"]))
    impute = str(rng.choice(["worst", "best", "latest"]))
    while_running = rng.choice([None, "worst", "best", "latest"])
    metric = {"name": "m", "goal": goal, "impute": impute}
    if while_running is not None:
        metric["impute_while_running"] = str(while_running)
    runs, wandb_runs = [], []
    sweeps = import_sweeps()
    for i in range(int(rng.integers(2, 9))):
        state = _ORACLE_STATES[int(rng.integers(len(_ORACLE_STATES)))]
        history = [float(v) for v in rng.normal(0, 3, int(rng.integers(1, 6))).round(3)]
        if rng.random() < 0.3:
            history.append(float("nan"))  # diverged: W&B's `latest` is the last finite value
        path = tmp_path / f"{i}.jsonl"
        path.write_text("".join(json.dumps({"m": v}) + "\n" for v in history))
        logged = RunMetrics([JsonlSource(path)])  # what the agent reports, as it reads it
        logged.update()
        if state is RunState.RUNNING:  # only its live file knows, and only with the option
            live = LiveMetric(logged.metric_history("m"), logged.metric_value("m"))
            run = dataclasses.replace(
                make_run({"x": float(rng.random())}, state),
                metric_range=live.range if while_running else None,
            )
        else:
            finite = logged.metric_history("m")
            run = dataclasses.replace(
                make_run({"x": float(rng.random())}, state, logged.metric_value("m")),
                metric_range=logged.metric_range("m"),
                metric_last=finite[-1] if finite else None,  # as the agent reports it
            )
        runs.append(run)
        wandb_runs.append(
            sweeps.SweepRun(
                name=run.id,
                config={"x": {"value": run.params["x"]}},
                state=run.state.value if state is not RunState.STOPPED else "finished",
                history=[{"m": v} for v in history],
                summary_metrics={"m": history[-1]},
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sweeps.bayes_search import _construct_gp_data, bayes_baseline_validate_and_fill

        filled = bayes_baseline_validate_and_fill(
            {**RAW, "metric": metric, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
        )
        _, _, current_x, y, _ = _construct_gp_data(wandb_runs, filled)
    theirs = [float(v) * (-1 if goal == "maximize" else 1) for v in y]
    ours = _trials(make_config, runs, **{k: v for k, v in metric.items() if k != "name"})
    assert [v for state, v in ours if state is TrialState.COMPLETE] == pytest.approx(theirs)
    assert sum(state is TrialState.RUNNING for state, _ in ours) == len(current_x)


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
