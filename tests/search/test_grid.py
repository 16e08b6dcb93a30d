"""Grid search against W&B's engine: the same points, in the same order, each once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sweepherd.errors import ConfigError
from sweepherd.runs import RunState
from sweepherd.search import grid_size, suggest

CORPUS: dict[str, dict[str, Any]] = {
    "int_uniform and strings": {
        "b": {"values": ["relu", "gelu", "tanh"]},
        "a": {"min": -1, "max": 2},
    },
    "q_uniform float q (arange artefacts)": {
        "x": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1}
    },
    "q_uniform int q": {"n": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 3}},
    "q_uniform default q is 1.0": {"n": {"distribution": "q_uniform", "min": 0, "max": 3}},
    "q_uniform float min, int q": {
        "n": {"distribution": "q_uniform", "min": 0.5, "max": 5, "q": 2}
    },
    "mixed categorical": {
        "v": {
            "values": [
                1,
                True,
                1.0,
                None,
                "x",
                2.0,
                2,
                [1, 2],
                {"k": 1},
                {"k": 1, "j": [None]},
                0.5,
                False,
                0,
            ]
        },
        "w": {"values": ["a", "b"]},
    },
    "constants and nesting": {
        "zeta": {"value": 7},
        "opt": {
            "parameters": {
                "name": {"values": ["sgd", "adam"]},
                "lr": {"values": [0.1, 0.01]},
                "sched": {
                    "parameters": {"gamma": {"values": [0.5, 0.9]}, "kind": {"value": "step"}}
                },
            }
        },
        "Alpha": {"min": 1, "max": 2},
        "a_b": {"values": [None, "x"]},
        "a": {"values": [3]},
    },
    "only constants": {"c": {"value": {"nested": [1, 2]}}, "d": {"value": None}},
}


def _typed(x: Any) -> Any:
    """A value with the types of everything inside it, so 1 and 1.0 and True compare unequal."""
    if isinstance(x, dict):
        return {k: _typed(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_typed(v) for v in x]
    return (type(x).__name__, x)


@pytest.mark.parametrize("name", list(CORPUS))
def test_grid_enumerates_wandbs_points_in_wandbs_order(name, make_config, oracle):
    raw = {"method": "grid", "parameters": CORPUS[name]}
    expected = oracle(raw, [], 10_000)
    assert expected[-1] is None  # the oracle says when the grid ends
    got = suggest(make_config(raw), [], n=10_000)
    assert [_typed(p) for p in got] == [_typed(p) for p in expected[:-1]]
    assert grid_size(make_config(raw)) == len(got)  # what validate and status count


@pytest.mark.parametrize("name", list(CORPUS))
def test_grid_skips_points_of_runs_in_any_state_like_wandb(name, make_config, make_run, oracle):
    """Step by step, the run list grows with runs in every state; both engines agree each time."""
    raw = {"method": "grid", "parameters": CORPUS[name]}
    config = make_config(raw)
    states = list(RunState)
    runs = []
    for step in range(1000):
        got = suggest(config, runs, n=2)
        expected = [p for p in oracle(raw, runs, 2) if p is not None]
        assert [_typed(p) for p in got] == [_typed(p) for p in expected]
        if not got:
            break
        # claim the second point first when there are two, so order is not just "the next"
        runs.append(make_run(got[-1], state=states[step % len(states)]))
    else:
        pytest.fail("grid never ran out")
    assert suggest(config, runs, n=5) == []


def test_exhausted_grid_suggests_nothing(make_config, make_run):
    config = make_config({"method": "grid", "parameters": {"a": {"values": [1, 2]}}})
    runs = [make_run({"a": 1}, RunState.FAILED), make_run({"a": 2}, RunState.RUNNING)]
    assert suggest(config, runs, n=3) == []


def test_n_points_of_one_call_differ_and_stop_at_the_end(make_config, make_run):
    config = make_config({"method": "grid", "parameters": {"a": {"min": 1, "max": 5}}})
    runs = [make_run({"a": 2}, RunState.RUNNING)]
    assert suggest(config, runs, n=3) == [{"a": 1}, {"a": 3}, {"a": 4}]
    assert suggest(config, runs, n=10) == [{"a": 1}, {"a": 3}, {"a": 4}, {"a": 5}]
    assert suggest(config, runs, n=0) == []


def test_values_are_compared_by_value_not_by_spelling(make_config, make_run):
    """A hand-written 0.3 takes arange's 0.30000000000000004; 2.0 takes 2; True does not take 1."""
    config = make_config(
        {
            "method": "grid",
            "parameters": {
                "x": {"distribution": "q_uniform", "min": 0.2, "max": 0.5, "q": 0.1},
                "k": {"values": [1, 2]},
            },
        }
    )
    xs = np.arange(0.2, 0.5, 0.1).tolist()
    assert xs[1] == 0.30000000000000004
    runs = [
        make_run({"x": 0.3, "k": 2.0}),
        make_run({"x": round(xs[0], 6), "k": True}),  # True is not the point k=1
        make_run({"x": 0.2, "k": np.int64(2)}),  # numpy scalars from elsewhere still match
    ]
    got = suggest(config, runs, n=10)
    assert got == [
        {"x": xs[0], "k": 1},
        {"x": xs[1], "k": 1},
        {"x": xs[2], "k": 1},
        {"x": xs[2], "k": 2},
    ]


def test_dict_values_ignore_keys_injected_at_runtime(make_config, make_run):
    config = make_config(
        {"method": "grid", "parameters": {"net": {"values": [{"w": 1}, {"w": 2}]}}}
    )
    runs = [make_run({"net": {"w": 1, "_injected": "x"}})]
    assert suggest(config, runs, n=5) == [{"net": {"w": 2}}]


def test_runs_missing_a_parameter_or_off_the_grid_take_no_point(make_config, make_run):
    config = make_config(
        {"method": "grid", "parameters": {"a": {"values": [1, 2]}, "b": {"value": 0}}}
    )
    runs = [make_run({"b": 0}), make_run({"a": 3, "b": 0}), make_run({"a": "1"})]
    assert suggest(config, runs, n=5) == [{"a": 1, "b": 0}, {"a": 2, "b": 0}]


def test_suggestions_are_copies_not_the_configs_own_objects(make_config):
    config = make_config({"method": "grid", "parameters": {"a": {"values": [{"k": [1]}]}}})
    (point,) = suggest(config, [], n=1)
    point["a"]["k"].append(2)
    assert suggest(config, [], n=1) == [{"a": {"k": [1]}}]


@pytest.mark.parametrize(
    "spec",
    [
        {"min": 0.0, "max": 1.0},
        {"distribution": "normal"},
        {"values": [1, 2], "probabilities": [0.5, 0.5]},
    ],
)
def test_grid_refuses_what_it_cannot_enumerate(spec, make_unvalidated_config):
    config = make_unvalidated_config(
        {"method": "grid", "parameters": {"p": spec, "ok": {"values": [1]}}}
    )
    with pytest.raises(ConfigError, match=r"cannot enumerate parameter.* p"):
        suggest(config, [])
