"""Random search as a method: nested points of plain values with W&B's types."""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml

from sweepherd.runs import RunState
from sweepherd.search import suggest


def _leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k in ("opt", "deeper"):
            out.update(_leaves(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def _only_plain(x: Any) -> bool:
    if isinstance(x, dict):
        return all(type(k) is str and _only_plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_only_plain(v) for v in x)
    return x is None or type(x) in (bool, int, float, str)


def test_points_are_nested_plain_and_typed_like_wandbs(make_config, oracle, every_distribution):
    raw = {"method": "random", "parameters": every_distribution}
    ours = suggest(make_config(raw), [], n=50, rng=np.random.default_rng(1))
    theirs = [{k: _plainify(v) for k, v in p.items()} for p in oracle(raw, [], 50) if p]
    assert len(ours) == 50
    for point in ours:
        assert _only_plain(point)
        yaml.safe_load(yaml.safe_dump(point))  # what params.yaml needs
    our_types = {k: {type(p[k]).__name__ for p in map(_leaves, ours)} for k in _leaves(ours[0])}
    their_types = {
        k: {type(p[k]).__name__ for p in map(_leaves, theirs)} for k in _leaves(theirs[0])
    }
    assert our_types == their_types
    assert our_types["iu"] == {"int"} and our_types["qu_int"] == {"int"}
    assert our_types["qu"] == {"float"} and our_types["opt.deeper.qln"] == {"int"}
    assert ours[0]["const"] == 3 and set(ours[0]["opt"]) == {"n", "qn", "ln", "deeper"}


def _plainify(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plainify(v) for k, v in x.items()}
    return x.item() if isinstance(x, np.generic) else x


def test_points_of_one_call_differ_and_the_rng_alone_decides(make_config, make_run):
    config = make_config({"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    a = suggest(config, [], n=20, rng=np.random.default_rng(5))
    assert len({p["x"] for p in a}) == 20
    runs = [make_run(p, RunState.RUNNING) for p in a]
    # past runs do not matter to random search (as in W&B); the seed does
    assert suggest(config, runs, n=20, rng=np.random.default_rng(5)) == a
    assert suggest(config, [], n=20, rng=np.random.default_rng(6)) != a


def test_without_an_rng_points_still_come(make_config):
    config = make_config({"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    assert suggest(config, [], n=2)[0] != suggest(config, [], n=2)[0]
