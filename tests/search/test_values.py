"""Plain values and comparing values the way W&B's grid does."""

from __future__ import annotations

import numpy as np
import yaml

from sweepherd.search._values import plain, to_params, value_key


def test_plain_turns_numpy_and_tuples_into_yaml_safe_python():
    value = {"a": np.float64(0.5), "b": np.int64(3), "c": np.bool_(True), "d": (np.str_("x"), None)}
    out = plain(value)
    assert out == {"a": 0.5, "b": 3, "c": True, "d": ["x", None]}
    assert [type(out[k]) for k in "abc"] == [float, int, bool]
    assert type(out["d"][0]) is str
    yaml.safe_dump(out)


def test_plain_copies():
    inner = [1]
    out = plain({"k": inner})
    out["k"].append(2)
    assert inner == [1]


def test_value_keys_equal_exactly_where_wandb_and_robustness_say():
    k = value_key
    assert k(3) == k(3.0) == k(np.int64(3)) == k(2.9999999999999996)
    assert k(True) != k(1) and k(False) != k(0) and k(None) != k(0)
    assert k(0.1 + 0.2) == k(0.3) and k(0.3) != k(0.3000001)
    assert k("1") != k(1)
    assert k([1, 2]) != k([2, 1]) and k([1]) == k((1,)) and k([1]) != k({"1": 1})
    assert k({"a": 1, "b": [None]}) == k({"b": [None], "a": 1.0})
    assert k(float("nan")) == k(float("nan"))
    assert k(1e300) != k(1.0000001e300) and k(-0.0) == k(0)


def test_to_params_nests_by_path():
    assert to_params({("a",): np.float64(1.5), ("o", "x"): 1, ("o", "y"): (2,)}) == {
        "a": 1.5,
        "o": {"x": 1, "y": [2]},
    }
