"""The search space as Optuna sees it: one optimisable dimension per searchable parameter.

- ``categorical`` → a ``CategoricalDistribution`` over the indices of its distinct values (the
  values themselves may be lists, dicts or ``None``, which Optuna cannot hold);
- ``int_uniform`` → ``IntDistribution(min, max)``;
- ``uniform`` → ``FloatDistribution(min, max)``; ``log_uniform_values`` and
  ``inv_log_uniform_values`` (the same distribution) → ``FloatDistribution(min, max, log=True)``;
- every other distribution (``q_*``, normal, log-normal, beta) → the quantile ``u`` of the value
  under the distribution, ``FloatDistribution(U_EPS, 1 - U_EPS)``; the value is the inverse CDF
  of ``u``, quantised for ``q_*``. This is how W&B's engine searches them, and it gives the
  sampler a bounded space whose uniform prior is the parameter's own distribution.

Constants are not dimensions. A run's value that the space cannot hold (a category no longer in
the config, a string where a number is expected) makes that run invisible to the sampler.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweepherd.config._model import Param, SweepConfig
from sweepherd.search._sampling import cdf, ppf, require
from sweepherd.search._values import value_key

#: Margin that keeps the quantile of unbounded distributions away from 0 and 1.
U_EPS = 1e-6

_NATIVE_FLOAT = {"uniform": False, "log_uniform_values": True, "inv_log_uniform_values": True}


@dataclass(frozen=True)
class Dimension:
    """One searchable parameter and its Optuna distribution."""

    param: Param
    name: str  # the Optuna parameter name, unique within the space
    distribution: BaseDistribution
    values: tuple[Any, ...] = ()  # categorical: the distinct values, by index
    index: dict[Hashable, int] = field(default_factory=dict)  # categorical: value key -> index

    def to_internal(self, value: Any) -> Any:
        """The Optuna value for a run's ``value``, or None if the space cannot hold it."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return self.index.get(value_key(value))
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        x = float(value)
        if math.isnan(x):
            return None
        if isinstance(d, IntDistribution):
            return int(min(d.high, max(d.low, round(x))))
        if not isinstance(d, FloatDistribution):
            return None
        if self.param.distribution not in _NATIVE_FLOAT:
            x = cdf(self.param, x)
        return min(d.high, max(d.low, x))

    def converter(self) -> Callable[[Any], Any]:
        """:meth:`to_internal` specialised to this dimension: the same answers, faster for the
        plain values runs almost always hold (a thousand runs are converted on every call)."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            index = self.index
            return lambda value: index.get(value_key(value))
        if isinstance(d, IntDistribution):
            lo, hi = d.low, d.high

            def to_int(value: Any) -> Any:
                if type(value) is int:
                    return min(hi, max(lo, value))
                return self.to_internal(value)

            return to_int
        if isinstance(d, FloatDistribution) and self.param.distribution in _NATIVE_FLOAT:
            low, high = d.low, d.high

            def to_float(value: Any) -> Any:
                if type(value) is float and not math.isnan(value):
                    return min(high, max(low, value))
                return self.to_internal(value)

            return to_float
        return self.to_internal

    def to_value(self, internal: Any) -> Any:
        """The parameter value (W&B's type) for an Optuna value."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return self.values[int(internal)]
        if isinstance(d, IntDistribution):
            return int(internal)
        if self.param.distribution in _NATIVE_FLOAT:
            return float(internal)
        return ppf(self.param, float(internal))


def dimensions(config: SweepConfig) -> list[Dimension]:
    """The searchable dimensions of ``config``, in the order of its parameters."""
    return [
        _dimension(i, p) for i, p in enumerate(config.parameters) if p.distribution != "constant"
    ]


def _dimension(i: int, p: Param) -> Dimension:
    name = f"{i}:{p.name}"  # W&B names may contain dots, so the index keeps names unique
    if p.distribution == "categorical":
        values: list[Any] = []
        index: dict[Hashable, int] = {}
        for v in p.values or ():
            key = value_key(v)
            if key not in index:
                index[key] = len(values)
                values.append(v)
        return Dimension(
            p, name, CategoricalDistribution(list(range(len(values)))), tuple(values), index
        )
    if p.distribution == "int_uniform":
        return Dimension(p, name, IntDistribution(int(require(p, "min")), int(require(p, "max"))))
    if p.distribution in _NATIVE_FLOAT:
        log = _NATIVE_FLOAT[p.distribution]
        return Dimension(
            p, name, FloatDistribution(float(require(p, "min")), float(require(p, "max")), log=log)
        )
    return Dimension(p, name, FloatDistribution(U_EPS, 1.0 - U_EPS))


def distributions(dims: Sequence[Dimension]) -> dict[str, BaseDistribution]:
    """``{name: distribution}``, as ``Study.ask`` takes it."""
    return {d.name: d.distribution for d in dims}
