"""The startup design: points spread over the space before any model is trusted.

A Latin hypercube built one point at a time: each numeric dimension is cut into ``n_bins``
equal slices (where the parameter is uniform: on a log scale for log distributions), and a new
point takes, in every dimension, a random slice that no point of the sweep occupies yet (pending
runs included), at a random place inside it; a categorical dimension takes one of its least used
categories. So the first points cover every range evenly without piling up in corners (as
"farthest point" designs do in several dimensions: measured worse on Hartmann-6), it needs no
state between calls (every call looks at the runs), and two agents asking at the same time get
different slices, because each sees the other's pending run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


def space_filling_point(
    space: Mapping[str, BaseDistribution],
    others: Sequence[Mapping[str, Any]],
    seed: int | Sequence[int],
    n_bins: int = 10,
) -> dict[str, Any]:
    """A point of ``space`` (Optuna's external values) in slices ``others`` leave free.

    ``n_bins`` is the design's size: the number of points that fill every slice once (more
    points than that start a second round). Values in ``others`` that a dimension cannot hold,
    or that are missing, occupy nothing.
    """
    rng = np.random.default_rng(seed)
    n_bins = max(n_bins, 1)
    point: dict[str, Any] = {}
    for name, d in space.items():
        values = [p[name] for p in others if name in p]
        if isinstance(d, CategoricalDistribution):
            counts = [sum(1 for v in values if v == c) for c in d.choices]
            least = [c for c, k in zip(d.choices, counts, strict=True) if k == min(counts)]
            point[name] = least[int(rng.integers(len(least)))]
            continue
        units = [u for u in (_unit(d, v) for v in values) if not math.isnan(u)]
        rounds = len(units) // n_bins  # slices already filled this many times over
        used = {min(int(u * n_bins), n_bins - 1) for u in units[rounds * n_bins :]}
        free = [b for b in range(n_bins) if b not in used] or list(range(n_bins))
        slot = free[int(rng.integers(len(free)))]
        point[name] = _from_unit(d, (slot + float(rng.random())) / n_bins)
    return point


def _unit(d: BaseDistribution, value: Any) -> float:
    """``value`` scaled to [0, 1], NaN if ``d`` cannot hold it."""
    if not isinstance(d, (FloatDistribution, IntDistribution)):
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    lo, hi, x = _bounds(d)
    if hi <= lo:
        return 0.0
    x = _scale(d, float(value))
    return min(1.0, max(0.0, (x - lo) / (hi - lo)))


def _from_unit(d: BaseDistribution, u: float) -> Any:
    """The value of ``d`` at ``u`` in [0, 1] (where ``d`` is uniform)."""
    lo, hi, _ = _bounds(d)
    x = lo + u * (hi - lo)
    if isinstance(d, IntDistribution):
        value = math.exp(x) if d.log else x
        k = round((value - d.low) / d.step)
        return int(min(d.high, max(d.low, d.low + k * d.step)))
    if isinstance(d, FloatDistribution):
        value = math.exp(x) if d.log else x
        if d.step is not None:
            value = d.low + round((value - d.low) / d.step) * d.step
        return float(min(d.high, max(d.low, value)))
    raise TypeError(f"unsupported distribution {d!r}")


def _bounds(d: BaseDistribution) -> tuple[float, float, None]:
    """The range of ``d`` where it is uniform; ints reach half a step past each end."""
    if isinstance(d, IntDistribution):
        half = d.step / 2
        lo, hi = d.low - half, d.high + half
        if d.log:
            return math.log(max(lo, d.low / 2)), math.log(hi), None
        return lo, hi, None
    if isinstance(d, FloatDistribution):
        if d.log:
            return math.log(d.low), math.log(d.high), None
        return d.low, d.high, None
    raise TypeError(f"unsupported distribution {d!r}")


def _scale(d: FloatDistribution | IntDistribution, x: float) -> float:
    return math.log(max(x, 1e-300)) if d.log else x
