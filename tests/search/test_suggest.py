"""The package's entry points: the method registry, suggest()'s contract, and done_reason()."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import sweepherd.search as search
from sweepherd.errors import ConfigError
from sweepherd.runs import RunState
from sweepherd.search import METHODS, done_reason, suggest

PARAMS = {"a": {"values": [1, 2, 3]}}


def test_the_api_is_what_architecture_md_says():
    assert sorted(search.__all__) == [
        "METHODS",
        "SearchMethod",
        "done_reason",
        "grid_size",
        "suggest",
        "warm_up",
    ]
    assert sorted(METHODS) == ["bayes", "grid", "random"]
    with pytest.raises(TypeError):
        METHODS["mine"] = METHODS["grid"]  # type: ignore[index]


def test_an_unknown_method_names_the_known_ones(make_config):
    config = dataclasses.replace(
        make_config({"method": "grid", "parameters": PARAMS}), method="hyper"
    )
    with pytest.raises(ConfigError, match=r"unknown search method 'hyper'.*grid, random, bayes"):
        suggest(config, [])


def test_n_must_not_be_negative(make_config):
    config = make_config({"method": "random", "parameters": PARAMS})
    with pytest.raises(ValueError, match="n must be >= 0"):
        suggest(config, [], n=-1)
    assert suggest(config, [], n=0) == []


def test_importing_search_does_not_import_optuna():
    import subprocess
    import sys

    code = "import sys, sweepherd.search; print('optuna' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("state", list(RunState))
def test_run_cap_counts_runs_in_every_state(state, make_config, make_run):
    config = make_config({"method": "random", "parameters": PARAMS, "run_cap": 3})
    runs = [make_run({"a": 1}, state) for _ in range(2)]
    assert done_reason(config, runs) is None
    assert done_reason(config, [*runs, make_run({"a": 1}, state)]) == "run_cap of 3 reached"
    assert done_reason(config, [*runs, *runs]) == "run_cap of 3 reached"


@pytest.mark.parametrize(
    ("goal", "hit", "miss"), [("minimize", 0.1, 0.11), ("maximize", 0.9, 0.89)]
)
def test_target_reached_by_a_finished_run_in_the_goals_direction(
    goal, hit, miss, make_config, make_run
):
    target = 0.1 if goal == "minimize" else 0.9
    config = make_config(
        {
            "method": "random",
            "parameters": PARAMS,
            "metric": {"name": "val_loss", "goal": goal, "target": target},
        }
    )
    assert done_reason(config, [make_run({"a": 1}, metric=miss)]) is None
    # only a finished run counts: a running or failed one may still be wrong
    others = [make_run({"a": 1}, s, metric=hit) for s in RunState if s != RunState.FINISHED]
    assert done_reason(config, others) is None
    runs = [
        *others,
        make_run({"a": 1}, metric=miss),
        make_run({"a": 2}, metric=hit, run_id="best1"),
    ]
    assert (
        done_reason(config, runs)
        == f"metric val_loss reached target {target:g} in run best1 ({hit:g})"
    )


def test_no_reason_without_cap_or_target(make_config, make_run):
    config = make_config({"method": "bayes", "parameters": PARAMS, "metric": {"name": "m"}})
    assert done_reason(config, [make_run({"a": 1}, metric=-1e9) for _ in range(100)]) is None


def test_methods_are_pure_functions_of_their_inputs(make_config, make_run):
    """The same config, runs and seed give the same points, for every method."""
    for method in METHODS:
        config = make_config(
            {
                "method": method,
                "parameters": {"x": {"min": 0.0, "max": 1.0}, **PARAMS}
                if method != "grid"
                else PARAMS,
                "metric": {"name": "m"},
            }
        )
        runs = [
            make_run(p, metric=float(i))
            for i, p in enumerate(suggest(config, [], n=2, rng=np.random.default_rng(0)))
        ]
        a = suggest(config, runs, n=2, rng=np.random.default_rng(1))
        assert a == suggest(config, runs, n=2, rng=np.random.default_rng(1)), method
