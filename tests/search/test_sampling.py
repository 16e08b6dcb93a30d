"""Every distribution, sampled by random search, against its definition and against W&B's engine.

Three kinds of evidence, all with fixed seeds so they are deterministic:

1. the inverse CDF gives W&B's value for the same quantile ``u`` (W&B samples as ``ppf(u)``);
2. 5,000 samples pass a KS or chi-square test against the theoretical distribution (scipy);
3. the same samples pass a two-sample test against 5,000 samples from W&B's engine.

The tests use p > 0.001; the helpers' power is shown by feeding them a wrong distribution.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from scipy import stats

from sweepherd.config._model import Param
from sweepherd.search import suggest
from sweepherd.search._sampling import cdf, ppf, quantize

N_SAMPLES = 5000
P_MIN = 0.001

# name -> (W&B parameter spec, the theoretical distribution of the *unquantised* value, q)
CONTINUOUS: dict[str, tuple[dict[str, Any], Any]] = {
    "uniform": ({"min": -2.0, "max": 3}, stats.uniform(loc=-2, scale=5)),
    "log_uniform_values": (
        {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
        stats.loguniform(1e-4, 0.1),
    ),
    "normal": ({"distribution": "normal", "mu": 2, "sigma": 0.5}, stats.norm(2, 0.5)),
    "log_normal": (
        {"distribution": "log_normal", "mu": -1, "sigma": 0.7},
        stats.lognorm(s=0.7, scale=math.exp(-1)),
    ),
    "beta": ({"distribution": "beta", "a": 0.5, "b": 2}, stats.beta(0.5, 2)),
    "normal (defaults)": ({"distribution": "normal"}, stats.norm(0, 1)),
}


class _InvOfLogUniform:
    """1 / X with X log-uniform on [1/max, 1/min]: the brief's reading of inv_log_uniform_values."""

    def __init__(self, lo: float, hi: float) -> None:
        self.x = stats.loguniform(1 / hi, 1 / lo)

    def cdf(self, v: Any) -> Any:
        return 1 - self.x.cdf(1 / np.asarray(v))


CONTINUOUS["inv_log_uniform_values"] = (
    {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 10},
    _InvOfLogUniform(0.01, 10),
)

QUANTISED: dict[str, tuple[dict[str, Any], Any]] = {
    "q_uniform (float q)": (
        {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1},
        stats.uniform(0, 1),
    ),
    "q_uniform (int q: ends have half mass)": (
        {"distribution": "q_uniform", "min": 0, "max": 10, "q": 1},
        stats.uniform(0, 10),
    ),
    "q_uniform (default q 1.0)": (
        {"distribution": "q_uniform", "min": 2, "max": 6},
        stats.uniform(2, 4),
    ),
    "q_log_uniform_values": (
        {"distribution": "q_log_uniform_values", "min": 1, "max": 200, "q": 4},
        stats.loguniform(1, 200),
    ),
    "q_normal": ({"distribution": "q_normal", "mu": 0, "sigma": 3, "q": 0.5}, stats.norm(0, 3)),
    "q_log_normal": (
        {"distribution": "q_log_normal", "mu": 1, "sigma": 0.5, "q": 1},
        stats.lognorm(s=0.5, scale=math.e),
    ),
    "q_beta": ({"distribution": "q_beta", "a": 2, "b": 5, "q": 0.1}, stats.beta(2, 5)),
}

DISCRETE: dict[str, tuple[dict[str, Any], dict[Any, float]]] = {
    "int_uniform": ({"min": -3, "max": 4}, dict.fromkeys(range(-3, 5), 1 / 8)),
    "categorical": ({"values": ["a", "b", "c"]}, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}),
    "categorical with probabilities": (
        {"values": ["a", "b", "c", "d"], "probabilities": [0.1, 0.2, 0.3, 0.4]},
        {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4},
    ),
}

ALL_SPECS = {
    **{k: v[0] for k, v in CONTINUOUS.items()},
    **{k: v[0] for k, v in QUANTISED.items()},
    **{k: v[0] for k, v in DISCRETE.items()},
    "constant": {"value": {"k": [1, None]}},
}


def _param(make_config: Callable[..., Any], spec: dict[str, Any]) -> Param:
    config = make_config({"method": "random", "parameters": {"p": spec}})
    (param,) = config.parameters
    return param


def _ours(make_config: Callable[..., Any], spec: dict[str, Any], seed: int) -> list[Any]:
    config = make_config({"method": "random", "parameters": {"p": spec}})
    return [p["p"] for p in suggest(config, [], n=N_SAMPLES, rng=np.random.default_rng(seed))]


def _wandbs(spec: dict[str, Any], seed: int, import_sweeps: Callable[[], Any]) -> list[Any]:
    """N samples from W&B's engine: its ``HyperParameter.ppf`` of Python ``random.uniform``,
    which is what its ``sample()`` does."""
    hp = import_sweeps().params.HyperParameter("p", dict(spec))
    gen = random.Random(seed)
    u = np.array([gen.uniform(0.0, 1.0) for _ in range(N_SAMPLES)])
    if hp.type in (hp.CATEGORICAL_PROB, hp.CATEGORICAL):
        # W&B's vectorised ppf for probabilities is wrong (argmin of cdf >= u); sample() is scalar
        return [hp.ppf(float(x)) for x in u]
    return np.asarray(hp.ppf(u)).tolist()


# -- test helpers, and proof that they can fail ---------------------------------------------


def ks_p(samples: Sequence[float], theoretical_cdf: Callable[[Any], Any]) -> float:
    return float(stats.kstest(np.asarray(samples, dtype=float), theoretical_cdf).pvalue)


def chi2_p(samples: Sequence[Any], expected_probability: dict[Any, float]) -> float:
    """Chi-square goodness of fit; categories with small expectation are pooled into one."""
    counts = Counter(samples)
    assert set(counts) <= set(expected_probability), set(counts) - set(expected_probability)
    big = [k for k, p in expected_probability.items() if p * len(samples) >= 5]
    observed = [counts[k] for k in big]
    expected = [expected_probability[k] * len(samples) for k in big]
    rest_expected = len(samples) - sum(expected)
    if rest_expected >= 1:
        observed.append(len(samples) - sum(observed))
        expected.append(rest_expected)
    expected = list(np.asarray(expected) * sum(observed) / sum(expected))
    return float(stats.chisquare(observed, expected).pvalue)


def quantised_pmf(dist: Any, q: float, values: Sequence[float]) -> dict[Any, float]:
    """P(round(X / q) * q == k q) = F((k + 1/2) q) - F((k - 1/2) q), for the ks seen and near."""
    ks = {round(v / q) for v in values}
    lo, hi = min(ks) - 3, max(ks) + 3
    return {
        quantize(k * q, q): float(dist.cdf((k + 0.5) * q) - dist.cdf((k - 0.5) * q))
        for k in range(lo, hi + 1)
    }


def test_helpers_reject_a_wrong_distribution():
    rng = np.random.default_rng(7)
    uniform = rng.uniform(1e-4, 0.1, N_SAMPLES)
    assert ks_p(uniform, stats.uniform(1e-4, 0.1 - 1e-4).cdf) > P_MIN
    assert ks_p(uniform, stats.loguniform(1e-4, 0.1).cdf) < 1e-12
    # a normal with a 20% wrong sigma is caught too (KS is weak on scale: 10% is not)
    assert ks_p(rng.normal(0, 1.2, N_SAMPLES), stats.norm(0, 1).cdf) < P_MIN
    equal = list(rng.choice(["a", "b", "c", "d"], N_SAMPLES))
    assert chi2_p(equal, {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}) < 1e-12
    # q_uniform with equal mass at the ends (a plausible misreading) is caught
    wrong = list(rng.integers(0, 11, N_SAMPLES))
    assert chi2_p(wrong, quantised_pmf(stats.uniform(0, 10), 1, range(11))) < 1e-12
    # and the two-sample tests
    assert stats.ks_2samp(uniform, rng.uniform(1e-4, 0.12, N_SAMPLES)).pvalue < P_MIN


# -- 1. the inverse CDF is W&B's -----------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL_SPECS))
def test_ppf_gives_wandbs_value_for_the_same_quantile(name, make_config, import_sweeps):
    spec = ALL_SPECS[name]
    param = _param(make_config, spec)
    hp = import_sweeps().params.HyperParameter("p", dict(spec))
    us = [*np.random.default_rng(3).uniform(0, 1, 300).tolist(), 1e-6, 0.25, 0.5, 0.75, 1 - 1e-6]
    for u in us:
        ours, theirs = ppf(param, u), hp.ppf(u)
        theirs = theirs.item() if hasattr(theirs, "item") else theirs
        assert type(ours) is type(theirs), (u, ours, theirs)
        if isinstance(ours, float):
            assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12), u
        else:
            assert ours == theirs, u


@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_cdf_inverts_ppf_and_matches_scipy(name, make_config):
    spec, dist = CONTINUOUS[name]
    param = _param(make_config, spec)
    for u in np.linspace(0.01, 0.99, 37):
        x = ppf(param, float(u))
        assert cdf(param, x) == pytest.approx(u, abs=1e-9)
        assert cdf(param, x) == pytest.approx(float(dist.cdf(x)), abs=1e-9)


# -- 2. and 3. the samples follow the distribution, and W&B's samples --------------------------


@pytest.mark.parametrize("name", list(CONTINUOUS))
def test_continuous_samples_follow_the_distribution(name, make_config, import_sweeps):
    spec, dist = CONTINUOUS[name]
    ours = _ours(make_config, spec, seed=11)
    assert all(type(v) is float for v in ours)
    assert ks_p(ours, dist.cdf) > P_MIN
    theirs = _wandbs(spec, seed=12, import_sweeps=import_sweeps)
    assert stats.ks_2samp(ours, theirs).pvalue > P_MIN


@pytest.mark.parametrize("name", list(QUANTISED))
def test_quantised_samples_follow_the_distribution(name, make_config, import_sweeps):
    spec, dist = QUANTISED[name]
    q = spec.get("q", 1.0)
    ours = _ours(make_config, spec, seed=21)
    assert all(type(v) is type(q) for v in ours)  # int q -> ints, float q -> floats
    assert all(quantize(v, q) == v for v in ours)  # exactly round(x / q) * q
    assert chi2_p(ours, quantised_pmf(dist, q, ours)) > P_MIN
    theirs = _wandbs(spec, seed=22, import_sweeps=import_sweeps)
    assert all(quantize(v, q) == v for v in theirs)
    table = _contingency(ours, theirs)
    assert stats.chi2_contingency(table).pvalue > P_MIN


@pytest.mark.parametrize("name", list(DISCRETE))
def test_discrete_samples_follow_the_distribution(name, make_config, import_sweeps):
    spec, probability = DISCRETE[name]
    ours = _ours(make_config, spec, seed=31)
    assert all(type(v) is type(next(iter(probability))) for v in ours)
    assert chi2_p(ours, probability) > P_MIN
    theirs = _wandbs(spec, seed=32, import_sweeps=import_sweeps)
    assert stats.chi2_contingency(_contingency(ours, theirs)).pvalue > P_MIN


def _contingency(a: Sequence[Any], b: Sequence[Any]) -> np.ndarray:
    """2 x k counts of the values both samples take, rare values (< 10 in total) pooled."""
    ca, cb = Counter(a), Counter(b)
    common = sorted((k for k in set(ca) | set(cb) if ca[k] + cb[k] >= 10), key=repr)
    rows = [
        [c[k] for k in common] + [len(x) - sum(c[k] for k in common)] for c, x in ((ca, a), (cb, b))
    ]
    table = np.array(rows)
    return table[:, table.sum(axis=0) > 0]


def test_categorical_samples_are_the_configs_values_in_plain_types(make_unvalidated_config):
    """Tuples (which a YAML config never holds) come out as lists."""
    values = [None, True, 3, 2.5, "s", [1, {"a": None}], {"k": (1, 2)}]
    ours = _ours(make_unvalidated_config, {"values": values}, seed=41)
    plain = [None, True, 3, 2.5, "s", [1, {"a": None}], {"k": [1, 2]}]
    for v in plain:
        assert ours.count(v) > N_SAMPLES / len(values) / 2
    assert {repr(v) for v in ours} == {repr(v) for v in plain}
