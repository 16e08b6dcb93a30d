"""Every W&B distribution as an inverse CDF of a uniform ``u`` in [0, 1), and its CDF.

W&B's engine samples a parameter as ``ppf(u)`` with ``u`` uniform, and its Bayesian search works
in the same unit interval. These are W&B's definitions (``sweeps/params.py``), written out:

- ``categorical``: each value equally likely; with ``probabilities``, value *i* with that
  probability.
- ``int_uniform``: an int in ``min..max``, both included.
- ``uniform``: a float in ``[min, max]``; ``q_uniform``: that, rounded as ``round(x / q) * q``.
- ``log_uniform_values``: ``exp`` of a uniform on ``[log min, log max]``;
  ``inv_log_uniform_values`` is W&B's ``exp(-U)``, ``U`` uniform on ``[-log max, -log min]``,
  which is the same distribution; ``q_log_uniform_values`` rounds the former to ``q``.
- ``normal``: ``N(mu, sigma)``; ``log_normal``: ``exp(N(mu, sigma))``; ``beta``: ``Beta(a, b)``;
  each with a ``q_`` form rounded to ``q``.

Rounding is half-to-even, as ``numpy.round``. A ``q_*`` value is an ``int`` when ``q`` is an
``int`` and a ``float`` otherwise (W&B's ``q`` defaults to ``1.0``, so floats), and every other
continuous value is a ``float``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np

from sweepherd.config._model import Param
from sweepherd.errors import ConfigError

#: Smallest and largest ``u`` handed to an inverse CDF: keeps normal forms finite.
U_MIN = 1e-12
U_MAX = 1.0 - 1e-12

_STANDARD_NORMAL = NormalDist()


def sample(param: Param, rng: np.random.Generator) -> Any:
    """One value of ``param`` drawn from its distribution."""
    return ppf(param, float(rng.random()))


def ppf(param: Param, u: float) -> Any:
    """The value of ``param`` at quantile ``u`` (W&B's ``HyperParameter.ppf``)."""
    return _PPF[param.distribution](param, u)


def cdf(param: Param, value: Any) -> float:
    """The quantile of ``value`` under ``param``'s distribution, in [0, 1].

    Defined for the numeric distributions; categorical values are handled by index.
    """
    return min(1.0, max(0.0, _CDF[param.distribution](param, float(value))))


def quantize(x: float, q: float) -> int | float:
    """W&B's ``round(x / q) * q``; an ``int`` when ``q`` is an ``int``."""
    k = round(x / q)  # Python rounds floats half-to-even, like numpy.round
    if isinstance(q, int) and not isinstance(q, bool):
        return int(k * q)
    return float(k) * float(q)


# -- inverse CDFs -------------------------------------------------------------------------


def _index(u: float, n: int) -> int:
    """scipy's ``randint.ppf(u, 0, n)``: the smallest i with (i + 1) / n >= u."""
    return min(n - 1, max(0, math.ceil(u * n) - 1))


def _ppf_constant(p: Param, u: float) -> Any:
    return p.value


def _ppf_categorical(p: Param, u: float) -> Any:
    values = p.values or ()
    if p.probabilities is None:
        return values[_index(u, len(values))]
    # the first value whose cumulative probability exceeds u
    cumulative = np.cumsum(p.probabilities)
    i = int(np.searchsorted(cumulative, u, side="right"))
    return values[min(i, len(values) - 1)]


def _ppf_int_uniform(p: Param, u: float) -> int:
    lo, hi = int(require(p, "min")), int(require(p, "max"))
    return lo + _index(u, hi - lo + 1)


def _ppf_uniform(p: Param, u: float) -> float:
    lo, hi = float(require(p, "min")), float(require(p, "max"))
    return lo + u * (hi - lo)


def _ppf_q_uniform(p: Param, u: float) -> int | float:
    return quantize(_ppf_uniform(p, u), require(p, "q"))


def _ppf_log_uniform(p: Param, u: float) -> float:
    lo, hi = math.log(require(p, "min")), math.log(require(p, "max"))
    return math.exp(lo + u * (hi - lo))


def _ppf_inv_log_uniform(p: Param, u: float) -> float:
    lo, hi = -math.log(require(p, "max")), -math.log(require(p, "min"))
    return math.exp(-(lo + (1.0 - u) * (hi - lo)))


def _ppf_q_log_uniform(p: Param, u: float) -> int | float:
    return quantize(_ppf_log_uniform(p, u), require(p, "q"))


def _z(u: float) -> float:
    return _STANDARD_NORMAL.inv_cdf(min(U_MAX, max(U_MIN, u)))


def _ppf_normal(p: Param, u: float) -> float:
    return float(require(p, "mu")) + float(require(p, "sigma")) * _z(u)


def _ppf_q_normal(p: Param, u: float) -> int | float:
    return quantize(_ppf_normal(p, u), require(p, "q"))


def _ppf_log_normal(p: Param, u: float) -> float:
    return math.exp(_ppf_normal(p, u))


def _ppf_q_log_normal(p: Param, u: float) -> int | float:
    return quantize(_ppf_log_normal(p, u), require(p, "q"))


def _ppf_beta(p: Param, u: float) -> float:
    from scipy.special import betaincinv  # only beta needs scipy; keep the import lazy

    return float(betaincinv(float(require(p, "a")), float(require(p, "b")), u))


def _ppf_q_beta(p: Param, u: float) -> int | float:
    return quantize(_ppf_beta(p, u), require(p, "q"))


_PPF: dict[str, Callable[[Param, float], Any]] = {
    "constant": _ppf_constant,
    "categorical": _ppf_categorical,
    "int_uniform": _ppf_int_uniform,
    "uniform": _ppf_uniform,
    "q_uniform": _ppf_q_uniform,
    "log_uniform_values": _ppf_log_uniform,
    "inv_log_uniform_values": _ppf_inv_log_uniform,
    "q_log_uniform_values": _ppf_q_log_uniform,
    "normal": _ppf_normal,
    "q_normal": _ppf_q_normal,
    "log_normal": _ppf_log_normal,
    "q_log_normal": _ppf_q_log_normal,
    "beta": _ppf_beta,
    "q_beta": _ppf_q_beta,
}


# -- CDFs ---------------------------------------------------------------------------------


def _cdf_uniform(p: Param, x: float) -> float:
    lo, hi = float(require(p, "min")), float(require(p, "max"))
    return (x - lo) / (hi - lo) if hi > lo else 0.5


def _cdf_int_uniform(p: Param, x: float) -> float:
    lo, hi = int(require(p, "min")), int(require(p, "max"))
    return (math.floor(x) - lo + 1) / (hi - lo + 1)


def _cdf_log_uniform(p: Param, x: float) -> float:
    if x <= 0:
        return 0.0
    lo, hi = math.log(require(p, "min")), math.log(require(p, "max"))
    return (math.log(x) - lo) / (hi - lo) if hi > lo else 0.5


def _cdf_normal(p: Param, x: float) -> float:
    sigma = float(require(p, "sigma"))
    if sigma <= 0:
        return 0.5
    return _STANDARD_NORMAL.cdf((x - float(require(p, "mu"))) / sigma)


def _cdf_log_normal(p: Param, x: float) -> float:
    return 0.0 if x <= 0 else _cdf_normal(p, math.log(x))


def _cdf_beta(p: Param, x: float) -> float:
    from scipy.special import betainc

    return float(betainc(float(require(p, "a")), float(require(p, "b")), min(1.0, max(0.0, x))))


_CDF: dict[str, Callable[[Param, float], float]] = {
    "int_uniform": _cdf_int_uniform,
    "uniform": _cdf_uniform,
    "q_uniform": _cdf_uniform,
    "log_uniform_values": _cdf_log_uniform,
    "inv_log_uniform_values": _cdf_log_uniform,  # the same distribution, see the module doc
    "q_log_uniform_values": _cdf_log_uniform,
    "normal": _cdf_normal,
    "q_normal": _cdf_normal,
    "log_normal": _cdf_log_normal,
    "q_log_normal": _cdf_log_normal,
    "beta": _cdf_beta,
    "q_beta": _cdf_beta,
}


def require(p: Param, name: str) -> Any:
    """The field ``name`` of ``p``, which its distribution needs (validation guarantees it)."""
    value = getattr(p, name)
    if value is None:
        raise ConfigError(
            f"parameters.{p.name}: distribution {p.distribution} needs '{name}'",
            hint="Validate the config with `sweepherd validate`.",
        )
    return value
