"""W&B parameters as Optuna dimensions, and back."""

from __future__ import annotations

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweepherd.search._sampling import ppf
from sweepherd.search._space import U_EPS, dimensions


def _dims(make_config, every_distribution):
    config = make_config({"method": "random", "parameters": every_distribution})
    return {d.param.name: d for d in dimensions(config)}


def test_each_distribution_gets_the_dimension_the_brief_names(make_config, every_distribution):
    dims = _dims(make_config, every_distribution)
    assert "const" not in dims
    assert dims["cat"].distribution == CategoricalDistribution([0, 1, 2, 3])
    assert dims["catp"].distribution == CategoricalDistribution([0, 1])
    assert dims["iu"].distribution == IntDistribution(1, 9)
    assert dims["u"].distribution == FloatDistribution(0, 1.0)
    assert dims["lu"].distribution == FloatDistribution(1e-5, 1, log=True)
    assert dims["ilu"].distribution == FloatDistribution(1, 100, log=True)
    cdf_space = FloatDistribution(U_EPS, 1 - U_EPS)
    for name in (
        "qu",
        "qu_int",
        "qlu",
        "opt.n",
        "opt.qn",
        "opt.ln",
        "opt.deeper.qln",
        "opt.deeper.b",
        "opt.deeper.qb",
    ):
        assert dims[name].distribution == cdf_space, name


def test_values_go_to_the_space_and_come_back(make_config, every_distribution):
    dims = _dims(make_config, every_distribution)
    rng = np.random.default_rng(0)
    for d in dims.values():
        for u in rng.uniform(0.001, 0.999, 50):
            value = ppf(d.param, float(u))
            internal = d.to_internal(value)
            assert d.distribution._contains(d.distribution.to_internal_repr(internal))
            back = d.to_value(internal)
            assert type(back) is type(value)
            if isinstance(value, float):
                assert back == pytest.approx(value, rel=1e-6), d.param.name
            else:
                assert back == value, d.param.name


def test_what_the_space_cannot_hold_is_none_or_clipped(make_config, every_distribution):
    dims = _dims(make_config, every_distribution)
    assert dims["cat"].to_internal("not a value") is None
    assert dims["iu"].to_internal("3") is None and dims["iu"].to_internal(True) is None
    assert dims["u"].to_internal(float("nan")) is None
    assert dims["iu"].to_internal(50) == 9 and dims["u"].to_internal(-1) == 0
    assert dims["opt.n"].to_internal(1e9) == 1 - U_EPS
    assert dims["cat"].to_internal({"k": [1.0]}) == 3  # compared by value
