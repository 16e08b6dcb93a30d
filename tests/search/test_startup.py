"""The startup design: points spread out, in the space, of the right types, pending ones avoided."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweepherd.search._startup import space_filling_point

SQUARE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}


def _min_gap(points: list[dict[str, float]]) -> float:
    return min(
        math.dist((a["x"], a["y"]), (b["x"], b["y"])) for a, b in itertools.combinations(points, 2)
    )


def _design(n: int, seed: int) -> list[dict[str, float]]:
    points: list[dict[str, float]] = []
    for i in range(n):
        points.append(space_filling_point(SQUARE, points, seed=(seed, i)))
    return points


def test_points_are_spread_wider_than_independent_draws():
    seeds = range(20)
    ours = statistics.median(_min_gap(_design(10, s)) for s in seeds)
    rng = np.random.default_rng(0)
    drawn = statistics.median(
        _min_gap([{"x": float(a), "y": float(b)} for a, b in rng.random((10, 2))]) for _ in seeds
    )
    # measured: 0.29 against 0.08 (ten points on a square grid would be 0.33 apart)
    assert ours > 2.5 * drawn, (ours, drawn)


def test_a_pending_point_is_avoided():
    for seed in range(10):
        pending = {"x": 0.5, "y": 0.5}
        point = space_filling_point(SQUARE, [pending], seed=seed)
        assert math.dist((point["x"], point["y"]), (0.5, 0.5)) > 0.25


def test_values_fit_their_distributions_and_are_deterministic():
    space = {
        "lr": FloatDistribution(1e-5, 1.0, log=True),
        "q": FloatDistribution(0.0, 1.0, step=0.25),
        "n": IntDistribution(1, 9, step=2),
        "units": IntDistribution(16, 1024, log=True),
        "c": CategoricalDistribution([0, 1, 2]),
    }
    points: list[dict[str, object]] = []
    for i in range(12):
        point = space_filling_point(space, points, seed=(3, i))
        assert point == space_filling_point(space, points, seed=(3, i))
        assert type(point["lr"]) is float and 1e-5 <= point["lr"] <= 1.0
        assert point["q"] in (0.0, 0.25, 0.5, 0.75, 1.0)
        assert type(point["n"]) is int and point["n"] in (1, 3, 5, 7, 9)
        assert type(point["units"]) is int and 16 <= point["units"] <= 1024
        assert point["c"] in (0, 1, 2)
        points.append(point)
    assert len({p["c"] for p in points}) == 3  # every category is tried
    assert min(p["lr"] for p in points) < 1e-3 < max(p["lr"] for p in points)  # log scale


def test_points_missing_a_dimension_or_holding_foreign_values_are_tolerated():
    space = {"x": FloatDistribution(0.0, 1.0), "c": CategoricalDistribution(["a", "b"])}
    others = [{"x": 0.5}, {"c": "zzz", "x": 0.1}, {"c": "a"}]
    point = space_filling_point(space, others, seed=0)
    assert 0.0 <= point["x"] <= 1.0 and point["c"] in ("a", "b")
