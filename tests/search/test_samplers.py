"""The default sampler of bayes: its phases, the fall-back without torch, parallel points apart."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from sweepherd.runs import Run, RunState
from sweepherd.search import suggest
from sweepherd.search._bayes import BayesSearch
from sweepherd.search._samplers import (
    GP_MAX_FINISHED,
    N_STARTUP,
    AutoSampler,
    auto_sampler,
    model_for,
    torch_available,
)

CUBE = {"a": {"min": 0.0, "max": 1.0}, "b": {"min": 0.0, "max": 1.0}, "c": {"min": 0.0, "max": 1.0}}
RAW = {"method": "bayes", "parameters": CUBE, "metric": {"name": "loss"}}

#: Finished runs past 10 per dimension, where the GP phase trusts one fit (_marginal_gp).
N_REFINING = 10 * len(CUBE) + 5
needs_torch = pytest.mark.skipif(not torch_available(), reason="the GP phase needs torch")


def _loss(p: dict[str, Any]) -> float:
    return (p["a"] - 0.3) ** 2 + (p["b"] - 0.6) ** 2 + 0.5 * (p["c"] - 0.5) ** 2


def _history(make_config, make_run, n_finished: int, seed: int = 0) -> list[Run]:
    random = make_config({**RAW, "method": "random"})
    points = suggest(random, [], n=n_finished, rng=np.random.default_rng(seed))
    return [make_run(p, metric=_loss(p)) for p in points]


def _recording() -> tuple[Callable[..., Any], list[AutoSampler]]:
    seen: list[AutoSampler] = []

    def make(seed: int, space: Any) -> Any:
        sampler = auto_sampler(seed, space)
        assert isinstance(sampler, AutoSampler)
        seen.append(sampler)
        return sampler

    return make, seen


def test_the_phase_follows_the_number_of_finished_runs():
    assert model_for(0, has_torch=True) == "startup"
    assert model_for(N_STARTUP - 1, has_torch=True) == "startup"
    assert model_for(N_STARTUP, has_torch=True) == "gp"
    assert model_for(GP_MAX_FINISHED, has_torch=True) == "gp"
    assert model_for(GP_MAX_FINISHED + 1, has_torch=True) == "tpe"
    assert model_for(N_STARTUP, has_torch=False) == "tpe"
    assert model_for(N_STARTUP - 1, has_torch=False) == "startup"


@pytest.mark.parametrize(
    ("n_finished", "phase"),
    [(N_STARTUP - 1, "startup"), (N_STARTUP + 2, "gp"), (GP_MAX_FINISHED + 1, "tpe")],
)
def test_bayes_switches_from_startup_to_gp_to_tpe(n_finished, phase, make_config, make_run):
    if phase == "gp" and not torch_available():
        pytest.skip("the GP phase needs torch")
    config = make_config(RAW)
    runs = _history(make_config, make_run, n_finished)
    runs += [make_run(p, RunState.RUNNING) for p in suggest(config, [], 2)]  # pending: not counted
    make, seen = _recording()
    (point,) = BayesSearch(make).suggest(config, runs, 1, np.random.default_rng(0))
    assert [s.phase for s in seen] == [phase]
    assert set(point) == set(CUBE) and all(0.0 <= v <= 1.0 for v in point.values())


def _gap(points: list[dict[str, Any]]) -> float:
    return min(
        math.dist([p[k] for k in CUBE], [q[k] for k in CUBE])
        for p, q in itertools.combinations(points, 2)
    )


@pytest.mark.parametrize(
    "n_finished",
    [
        0,
        pytest.param(N_STARTUP + 10, marks=needs_torch),
        pytest.param(N_REFINING, marks=needs_torch),
        GP_MAX_FINISHED + 20,
    ],
    ids=["startup", "gp", "gp-refining", "tpe"],
)
def test_parallel_agents_get_points_apart(n_finished, make_config, make_run):
    """Four agents claim one after the other, each seeing the others' runs pending."""
    # near-identical would be < 0.01 apart; the cube's diagonal is 1.7
    min_gap = 0.05
    if n_finished == N_REFINING:  # past the averaged acquisition: Optuna's, one fit
        from sweepherd.search._marginal_gp import refining

        assert refining(n_finished, len(CUBE)) and not refining(N_STARTUP + 10, len(CUBE))
        # The model knows this bowl's optimum by now, and q-batch EI spreads the four around
        # it (about 0.02 apart, as with Optuna's own noise floor); blind to each other, the
        # agents would all get the same point.
        min_gap = 0.01
    config = make_config(RAW)
    runs = _history(make_config, make_run, n_finished)
    points: list[dict[str, Any]] = []
    for agent in range(4):
        pending = [make_run(p, RunState.RUNNING) for p in points]
        # The same rng state for every agent: only the pending runs can set them apart.
        (point,) = suggest(config, runs + pending, rng=np.random.default_rng(7))
        points.append(point)
        if agent == 0:
            alone = suggest(config, runs, rng=np.random.default_rng(7))
            assert alone == [point]  # deterministic: what differs later is the pending runs
    assert _gap(points) > min_gap, points
    many = suggest(config, runs, n=4, rng=np.random.default_rng(7))  # one call, four points
    assert _gap(many) > min_gap, many


@pytest.mark.parametrize("n_finished", [0, N_STARTUP + 2, GP_MAX_FINISHED + 1])
def test_every_phase_returns_plain_values_in_the_space(
    n_finished, make_config, make_run, every_distribution
):
    space = {k: v for k, v in every_distribution.items() if k != "catp"}  # bayes refuses it
    raw = {"method": "bayes", "parameters": space, "metric": {"name": "loss"}}
    config = make_config(raw)
    random = make_config({**raw, "method": "random"})
    rng = np.random.default_rng(1)
    runs = [
        make_run(p, metric=float(rng.normal())) for p in suggest(random, [], n_finished, rng=rng)
    ]
    reference = suggest(random, [], 1, rng=rng)[0]
    for point in suggest(config, runs, n=2, rng=rng):
        assert json.loads(json.dumps(point)) == point  # plain JSON types all the way down
        assert set(point) == set(reference) and point["const"] == 3
        assert type(point["u"]) is float and type(point["iu"]) is int
        assert type(point["qu_int"]) is int and point["qu_int"] % 2 == 0
        assert type(point["opt"]["deeper"]["qln"]) is int


_WITHOUT_TORCH = """
import importlib.abc, json, sys

class HideTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is hidden by the test")
        return None

sys.meta_path.insert(0, HideTorch())

import numpy as np
from sweepherd.config import parse_config
from sweepherd.runs import Run, RunState
from sweepherd.search import suggest
from sweepherd.search._bayes import BayesSearch
from sweepherd.search._samplers import auto_sampler, torch_available, tpe_sampler

raw = json.loads(sys.argv[1])
config = parse_config(raw)
random = parse_config({**raw, "method": "random"})
points = suggest(random, [], 20, np.random.default_rng(0))
runs = [
    Run(id=f"r{i}", params=p, seq=i, state=RunState.FINISHED if i < 17 else RunState.RUNNING,
        metric=float(p["a"] + p["b"]) if i < 17 else None)
    for i, p in enumerate(points)
]
seen = []
def spy(seed, space):
    seen.append(auto_sampler(seed, space))
    return seen[-1]

got = BayesSearch(spy).suggest(config, runs, 3, np.random.default_rng(5))
tpe = BayesSearch(tpe_sampler).suggest(config, runs, 3, np.random.default_rng(5))
public = suggest(config, runs, 2, np.random.default_rng(6))
print(json.dumps({
    "torch_available": torch_available(),
    "torch_imported": any(m == "torch" or m.startswith("torch.") for m in sys.modules),
    "phase": seen[0].phase,
    "same_as_tpe": got == tpe,
    "points": got + public,
}))
"""


def test_without_torch_bayes_falls_back_to_tpe():
    """torch hidden by an import hook, in a fresh interpreter: TPE's points, no error."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_WITHOUT_TORCH), json.dumps(RAW)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""  # no warning or log line about the missing package
    result = json.loads(out.stdout)
    assert result["torch_available"] is False and result["torch_imported"] is False
    assert result["phase"] == "tpe" and result["same_as_tpe"] is True
    assert len(result["points"]) == 5
    assert all(
        set(p) == set(CUBE) and all(0 <= v <= 1 for v in p.values()) for p in result["points"]
    )
