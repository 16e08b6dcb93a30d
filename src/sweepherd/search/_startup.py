"""The startup design: points spread over the space before any model is trusted.

Mitchell's best-candidate sampling: draw a handful of random candidates and keep the one
farthest from every point the sweep already has, pending runs included. It needs no state
between calls (every call looks at the runs), it fills the space more evenly than independent
random draws, and two agents asking at the same time get far-apart points, because each sees
the other's pending run.

Distances are measured where the parameters are uniform: each numeric dimension scaled to
[0, 1] (on a log scale for log distributions), a categorical one counting 1 when the categories
differ.
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

#: Candidates drawn per point already in the sweep (Mitchell's factor), and at most.
CANDIDATES_PER_POINT = 10
MAX_CANDIDATES = 200


def space_filling_point(
    space: Mapping[str, BaseDistribution],
    others: Sequence[Mapping[str, Any]],
    seed: int | Sequence[int],
) -> dict[str, Any]:
    """A point of ``space`` (Optuna's external values) far from every point in ``others``.

    Points in ``others`` that lack a dimension of ``space`` are ignored for that dimension.
    """
    rng = np.random.default_rng(seed)
    n = min(MAX_CANDIDATES, CANDIDATES_PER_POINT * (len(others) + 1))
    names = list(space)
    cands = {name: _draw(space[name], rng, n) for name in names}
    if not others:
        return {name: cands[name][0] for name in names}
    dist2 = np.full((n, len(others)), 0.0)
    for name in names:
        d = space[name]
        c = np.array([_unit(d, v) for v in cands[name]])
        o = np.array([_unit(d, p[name]) if name in p else np.nan for p in others])
        if isinstance(d, CategoricalDistribution):
            diff = (c[:, None] != o[None, :]).astype(float)
        else:
            diff = (c[:, None] - o[None, :]) ** 2
        dist2 += np.nan_to_num(diff, nan=0.0) * ~np.isnan(o)[None, :]
    best = int(np.argmax(dist2.min(axis=1)))
    return {name: cands[name][best] for name in names}


def _draw(d: BaseDistribution, rng: np.random.Generator, n: int) -> list[Any]:
    """``n`` values of ``d``, uniform in the space where distances are measured."""
    u = rng.random(n)
    if isinstance(d, CategoricalDistribution):
        return [d.choices[min(int(x * len(d.choices)), len(d.choices) - 1)] for x in u]
    if isinstance(d, IntDistribution):
        if d.log:  # log-uniform over [low - 1/2, high + 1/2], rounded
            lo, hi = math.log(max(d.low - 0.5, 0.5)), math.log(d.high + 0.5)
            return [int(min(d.high, max(d.low, round(math.exp(lo + x * (hi - lo)))))) for x in u]
        n_values = (d.high - d.low) // d.step + 1
        return [int(d.low + d.step * min(int(x * n_values), n_values - 1)) for x in u]
    if isinstance(d, FloatDistribution):
        if d.log:
            xs = np.exp(math.log(d.low) + u * (math.log(d.high) - math.log(d.low)))
        else:
            xs = d.low + u * (d.high - d.low)
        if d.step is not None:
            xs = d.low + np.round((xs - d.low) / d.step) * d.step
        return [float(min(d.high, max(d.low, x))) for x in xs]
    raise TypeError(f"unsupported distribution {d!r}")


def _unit(d: BaseDistribution, value: Any) -> float:
    """``value`` scaled to [0, 1] (categorical: its index), NaN if ``d`` cannot hold it."""
    if isinstance(d, CategoricalDistribution):
        try:
            return float(d.choices.index(value))
        except ValueError:
            return math.nan
    if not isinstance(d, (FloatDistribution, IntDistribution)):
        return math.nan
    lo, hi, x = float(d.low), float(d.high), float(value)
    if hi <= lo:
        return 0.0
    if d.log:
        return (math.log(max(x, lo)) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return (x - lo) / (hi - lo)
