"""The GP phase's acquisition averaged over kernel-parameter draws (``_marginal_gp.py``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sweepherd.runs import RunState
from sweepherd.search import suggest
from sweepherd.search._samplers import (
    N_STARTUP,
    KnownSpaceGPSampler,
    gp_sampler,
    model_for,
    torch_available,
)

pytestmark = pytest.mark.skipif(not torch_available(), reason="the GP phase needs torch")

if torch_available():
    import torch
    from optuna._gp import acqf as optuna_acqf
    from optuna._gp import gp as optuna_gp
    from optuna._gp import prior as optuna_prior
    from optuna._gp.search_space import SearchSpace
    from optuna.distributions import FloatDistribution

    from sweepherd.search import _marginal_gp
    from sweepherd.search._marginal_gp import (
        DrawnGPs,
        DrawsLogEI,
        MarginalGPSampler,
        hook_available,
        posterior_draws,
    )


def _fitted(n: int = 30, seed: int = 0) -> Any:
    """Optuna's fit on a 3-D function that depends strongly on x0 and weakly on x2."""
    rng = np.random.RandomState(seed)
    x = rng.rand(n, 3)
    y = np.sin(6 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.05 * x[:, 2]
    y = (y - y.mean()) / y.std()
    return optuna_gp.fit_kernel_params(
        X=x,
        Y=y,
        is_categorical=np.zeros(3, dtype=bool),
        log_prior=optuna_prior.default_log_prior,
        minimum_noise=optuna_prior.DEFAULT_MINIMUM_NOISE_VAR,
        deterministic_objective=False,
    )


def _raw(gpr: Any) -> np.ndarray:
    return np.concatenate(
        [
            np.log(gpr.inverse_squared_lengthscales.numpy()),
            [
                math.log(gpr.kernel_scale.item()),
                math.log(gpr.noise_var.item() - optuna_prior.DEFAULT_MINIMUM_NOISE_VAR),
            ],
        ]
    )


def test_the_installed_optuna_has_the_hook_so_sweeps_use_the_averaged_acquisition():
    # If this fails after an Optuna upgrade, bayes silently falls back to a single kernel fit:
    # update _marginal_gp.py to the new hook rather than deleting this test.
    assert hook_available()
    space = {"a": FloatDistribution(0.0, 1.0)}
    assert type(gp_sampler(0, space)) is MarginalGPSampler


def test_without_the_hook_the_plain_gp_sampler_is_used(monkeypatch):
    monkeypatch.setattr(_marginal_gp, "hook_available", lambda: False)
    assert type(gp_sampler(0, {"a": FloatDistribution(0.0, 1.0)})) is KnownSpaceGPSampler


def test_draws_are_reproducible_distinct_and_near_the_fit():
    fitted = _fitted()
    draws = posterior_draws(fitted, 8, np.random.RandomState(3))
    assert draws.shape == (8, 5)
    assert np.array_equal(draws, posterior_draws(fitted, 8, np.random.RandomState(3)))
    assert len({tuple(r) for r in draws}) >= 6  # the chain moves (some draws may repeat)
    # A posterior draw sits below the mode's density, by about half the number of parameters
    # for a Gaussian posterior (5 here); one stuck at the mode or wandered off would not.
    density = _marginal_gp._LogDensity(fitted)
    mode = density(_raw(fitted))
    densities = [density(r) for r in draws]
    assert all(d <= mode + 1.0 for d in densities), (mode, densities)
    assert mode - 15 < float(np.mean(densities)) < mode - 0.5, (mode, densities)
    # x0 carries most of the signal: every draw keeps its length scale the shortest (its
    # inverse squared length scale the largest).
    assert all(np.argmax(r[:3]) == 0 for r in draws)


def test_a_fit_at_the_noise_floor_still_gives_distinct_draws():
    # A smooth deterministic function: the fit puts the noise so close to its floor that the
    # log of the excess was beyond the chain's limit, so every proposal was refused and all
    # the draws were the fit itself (the averaging silently off).
    x = np.random.RandomState(1).rand(40, 2)
    y = (x[:, 0] - 0.3) ** 2 + 2 * (x[:, 1] - 0.6) ** 2
    fitted = optuna_gp.fit_kernel_params(
        X=x,
        Y=(y.mean() - y) / y.std(),
        is_categorical=np.zeros(2, dtype=bool),
        log_prior=optuna_prior.default_log_prior,
        minimum_noise=optuna_prior.DEFAULT_MINIMUM_NOISE_VAR,
        deterministic_objective=False,
    )
    above_floor = fitted.noise_var.item() - optuna_prior.DEFAULT_MINIMUM_NOISE_VAR
    assert math.log(above_floor) < -_marginal_gp._RAW_LIMIT  # where the chain used to start
    draws = posterior_draws(fitted, 8, np.random.RandomState(0))
    assert len({tuple(r) for r in draws}) >= 6
    assert np.all(np.abs(draws) < _marginal_gp._RAW_LIMIT)


def _optuna_gp(fitted: Any, raw: np.ndarray) -> Any:
    """Optuna's own GP for one draw."""
    t = torch.from_numpy(raw)
    gpr = optuna_gp.GPRegressor(
        is_categorical=fitted._is_categorical,
        X_train=fitted._X_train,
        y_train=fitted._y_train.squeeze(-1),
        inverse_squared_lengthscales=torch.exp(t[:-2]),
        kernel_scale=torch.exp(t[-2]),
        noise_var=torch.exp(t[-1]) + optuna_prior.DEFAULT_MINIMUM_NOISE_VAR,
    )
    gpr._cache_matrix()
    return gpr


@pytest.mark.parametrize("n_pending", [0, 1, 3])
def test_the_acquisition_is_the_mean_of_optunas_own_over_the_draws(n_pending):
    """Batched over draws, the value and its gradient are those of Optuna's log-EI (or q-batch
    log-EI) for each draw's GP, averaged in probability."""
    fitted = _fitted()
    draws = posterior_draws(fitted, 4, np.random.RandomState(0))
    space = SearchSpace({k: FloatDistribution(0.0, 1.0) for k in "abc"})
    pending = np.random.RandomState(5).rand(n_pending, 3) if n_pending else None
    threshold = float(fitted._y_train.max())
    if pending is None:
        members = [optuna_acqf.LogEI(_optuna_gp(fitted, r), space, threshold) for r in draws]
    else:
        members = [
            optuna_acqf.qLogEI(_optuna_gp(fitted, r), space, threshold, 128, 11, pending)
            for r in draws
        ]
    ours = DrawsLogEI(DrawnGPs(fitted, draws), members[0], threshold, pending, 128, 11)
    x = torch.from_numpy(np.random.RandomState(2).rand(6, 3))
    each = torch.stack([m.eval_acqf(x) for m in members])
    assert not torch.allclose(each[0], each[1])  # the draws do differ where it is evaluated
    expected = torch.logsumexp(each, 0) - math.log(len(members))  # log of the mean
    assert torch.allclose(ours.eval_acqf(x), expected, rtol=1e-7, atol=1e-9)
    best = int(expected.argmax())  # where no draw's log-EI underflows
    many = torch.cat([x, torch.from_numpy(np.random.RandomState(3).rand(600, 3))])
    assert torch.allclose(ours.eval_acqf(many)[:6], ours.eval_acqf(x))  # evaluated in chunks
    point = x[best].numpy().copy()
    value, grad = ours.eval_acqf_with_grad(point)
    grads = [m.eval_acqf_with_grad(point) for m in members]
    logs = np.array([v for v, _ in grads])
    weights = np.exp(logs - logs.max()) / np.exp(logs - logs.max()).sum()
    assert value == pytest.approx(float(expected[best]), rel=1e-7)
    assert np.allclose(
        grad, sum(w * g for w, (_, g) in zip(weights, grads, strict=True)), rtol=1e-6
    )


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[DrawsLogEI]:
    """Every averaged acquisition the search builds, in order."""
    built: list[DrawsLogEI] = []
    real = DrawsLogEI.__init__

    def spy(self: DrawsLogEI, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(DrawsLogEI, "__init__", spy)
    return built


def _cube_sweep(make_config: Any, make_run: Any, names: str, n_runs: int) -> tuple[Any, list]:
    """A bayes sweep over the unit cube and ``n_runs`` finished runs at random points."""
    cube = {k: {"min": 0.0, "max": 1.0} for k in names}
    config = make_config({"method": "bayes", "parameters": cube, "metric": {"name": "loss"}})
    rng = np.random.default_rng(0)
    runs = []
    for _ in range(n_runs):
        params = {k: float(v) for k, v in zip(names, rng.random(len(names)), strict=True)}
        runs.append(make_run(params, metric=float(rng.random())))
    return config, runs


def test_bayes_suggestions_go_through_the_averaged_acquisition(built, make_config, make_run):
    config, runs = _cube_sweep(make_config, make_run, "abc", N_STARTUP + 2)
    suggest(config, runs, rng=np.random.default_rng(1))
    assert len(built) == 1 and built[0].pending is None
    n = N_STARTUP + 2
    assert built[0].gps.chol.shape == (_marginal_gp.N_DRAWS, n, n)
    pending = [make_run({"a": 0.5, "b": 0.5, "c": 0.5}, RunState.RUNNING)]
    suggest(config, runs + pending, rng=np.random.default_rng(1))
    assert len(built) == 2 and built[1].pending is not None
    assert torch.allclose(built[1].pending, torch.full((1, 3), 0.5, dtype=torch.float64))


def test_from_ten_runs_per_dimension_the_single_fit_is_trusted(built, make_config, make_run):
    per_dim = _marginal_gp.RUNS_PER_DIMENSION
    config, runs = _cube_sweep(make_config, make_run, "ab", 2 * per_dim)
    assert model_for(len(runs)) == "gp"
    suggest(config, runs[:-1], rng=np.random.default_rng(1))
    assert len(built) == 1  # one run short: still averaged
    suggest(config, runs, rng=np.random.default_rng(1))
    assert len(built) == 1  # Optuna's own acquisition, at its fit


def test_once_trusted_the_fit_gets_a_lower_noise_floor_than_optunas(
    monkeypatch, make_config, make_run
):
    # Optuna's floor (1e-6 of the standardised variance) capped how close to the optimum of a
    # deterministic metric the search could resolve; once the fit is trusted it gets a lower
    # one, and Optuna's while the acquisition is averaged.
    floors: list[float] = []
    real = optuna_gp.fit_kernel_params

    def spy(*args: Any, **kwargs: Any) -> Any:
        floors.append(kwargs["minimum_noise"])
        return real(*args, **kwargs)

    # Optuna's sampler reaches the module through a lazy proxy that copies its attributes on
    # first use, so both are patched.
    from optuna.samplers._gp import sampler as optuna_gp_sampler

    monkeypatch.setattr(optuna_gp, "fit_kernel_params", spy)
    monkeypatch.setattr(optuna_gp_sampler.gp, "fit_kernel_params", spy)
    per_dim = _marginal_gp.RUNS_PER_DIMENSION
    config, runs = _cube_sweep(make_config, make_run, "ab", 2 * per_dim)
    suggest(config, runs[:-1], rng=np.random.default_rng(1))
    suggest(config, runs, rng=np.random.default_rng(1))
    default = optuna_prior.DEFAULT_MINIMUM_NOISE_VAR
    assert floors == [default, _marginal_gp.REFINING_NOISE_VAR]
    assert default > _marginal_gp.REFINING_NOISE_VAR
