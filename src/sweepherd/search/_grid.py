"""Grid search: every combination of the parameters' values, in W&B's order, each once.

W&B's semantics (``sweeps/grid_search.py``), which this follows exactly:

- ``categorical`` values are taken as written (a value written twice is one point);
  ``int_uniform`` expands to ``min..max`` inclusive; ``q_uniform`` to
  ``numpy.arange(min, max, q)``, so ``max`` is excluded and the values are ints only when
  ``min``, ``max`` and ``q`` all are. ``constant`` parameters are in every point and are not
  part of the grid. Any other distribution cannot be enumerated and is a config error.
- Parameters are ordered by name, nested ones by their path (W&B sorts the keys at every
  level); the last parameter varies fastest (``itertools.product``).
- A point is taken once any run of the sweep, **whatever its state**, has it: a failed point is
  not retried. Values are compared by value (see :func:`~sweepherd.search._values.value_key`);
  for dict-valued parameters only the keys that the grid's dicts use are compared, as W&B
  ignores keys injected at runtime.
- When every point is taken the grid is exhausted and no more points are suggested.

Cost per call: one pass over the runs into a hash set, then a walk of the grid in order that
stops after ``n`` free points (at most one pass over the grid).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from sweepherd.config._model import GRID_DISTRIBUTIONS, Param, SweepConfig
from sweepherd.config._parameters import grid_axis_length
from sweepherd.errors import ConfigError
from sweepherd.runs import Run
from sweepherd.search._sampling import require
from sweepherd.search._values import to_params, value_key


class GridSearch:
    """The ``grid`` method. Deterministic: the ``rng`` is not used."""

    def suggest(
        self, config: SweepConfig, runs: Sequence[Run], n: int, rng: np.random.Generator
    ) -> list[dict[str, Any]]:
        """Up to ``n`` points no run has taken yet, in W&B's order; ``[]`` when exhausted."""
        axes = [_Axis(p) for p in sorted(_grid_params(config), key=lambda p: p.path)]
        constants = {p.path: p.value for p in config.parameters if p.distribution == "constant"}
        taken = _taken(axes, runs)
        out: list[dict[str, Any]] = []
        if n <= 0:
            return out
        for point in itertools.product(*(range(len(a.values)) for a in axes)):
            if point in taken:
                continue
            flat = dict(constants)
            flat.update((a.param.path, a.values[i]) for a, i in zip(axes, point, strict=True))
            out.append(to_params(flat))
            if len(out) == n:
                break
        return out


class _Axis:
    """One grid parameter: its distinct values in order, and how to find a run's value."""

    def __init__(self, param: Param) -> None:
        self.param = param
        values = _expand(param)
        # keys of dict values: other keys in a run's dict (injected at runtime) are ignored
        self.dict_keys = {str(k) for v in values if isinstance(v, dict) for k in v}
        self.values: list[Any] = []
        self.index: dict[Hashable, int] = {}
        for v in values:
            key = value_key(v)
            if key in self.index:
                # A repeated value (1 and 1.0) is one point, at its first position; W&B's
                # lookup from hash to value keeps the last one written, and so do we.
                self.values[self.index[key]] = v
            else:
                self.index[key] = len(self.values)
                self.values.append(v)
        # (type, value) -> position, for values that hash: most runs' values are exactly these
        self.exact: dict[tuple[type, Any], int] = {}
        for i, v in enumerate(self.values):
            with contextlib.suppress(TypeError):
                self.exact[(v.__class__, v)] = i

    def index_of(self, value: Any) -> int | None:
        """The position of a run's value on this axis, or None if it is not a grid value."""
        try:  # fast path: the very value the grid suggested (hashable scalars)
            return self.exact[(value.__class__, value)]
        except (KeyError, TypeError):
            pass
        if self.dict_keys and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k in self.dict_keys}
        return self.index.get(value_key(value))


def grid_size(config: SweepConfig) -> int:
    """How many points the grid over ``config``'s parameters has: the product of each axis's
    distinct values (a value written twice is one point), without listing long ranges."""
    size = 1
    for param in _grid_params(config):
        n = grid_axis_length(param)
        if n is None:  # categorical
            n = len({value_key(v) for v in param.values or ()})
        size *= max(0, n)
    return size


def _grid_params(config: SweepConfig) -> list[Param]:
    bad = [p for p in config.parameters if p.distribution not in GRID_DISTRIBUTIONS]
    bad += [p for p in config.parameters if p.probabilities is not None]
    if bad:
        names = ", ".join(sorted({p.name for p in bad}))
        raise ConfigError(
            f"grid search cannot enumerate parameter(s) {names}",
            hint="Grid search needs every parameter to be constant, categorical (without "
            "probabilities), int_uniform or q_uniform; use method random or bayes instead.",
        )
    return [p for p in config.parameters if p.distribution != "constant"]


def _expand(param: Param) -> list[Any]:
    """The values of one grid parameter, as W&B lists them."""
    if param.distribution == "int_uniform":
        return list(range(int(require(param, "min")), int(require(param, "max")) + 1))
    if param.distribution == "q_uniform":
        values: list[Any] = np.arange(
            require(param, "min"), require(param, "max"), require(param, "q")
        ).tolist()
        return values
    return list(param.values or ())


def _taken(axes: Sequence[_Axis], runs: Sequence[Run]) -> set[tuple[int, ...]]:
    """The grid points (as index tuples) that some run of the sweep already has."""
    taken: set[tuple[int, ...]] = set()
    paths = [axis.param.path for axis in axes]
    for run in runs:
        point: list[int] = []
        for axis, path in zip(axes, paths, strict=True):
            value = _lookup(run.params, path)
            i = None if value is _MISSING else axis.index_of(value)
            if i is None:
                break  # missing, or not a value of this grid (the config changed)
            point.append(i)
        else:
            taken.add(tuple(point))
    return taken


_MISSING = object()


def _lookup(params: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """``params[path[0]][path[1]]...``, or ``_MISSING``."""
    node: Any = params
    for key in path:
        try:
            node = node[key]
        except (KeyError, TypeError, IndexError):
            return _MISSING
    return node
