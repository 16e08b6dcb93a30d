"""Optuna's GP sampler with its kernel parameters averaged over instead of fitted once.

Optuna's ``GPSampler`` fits the kernel's length scales, scale and noise to the runs (their
most probable values under its priors) and trusts that one fit. With a few dozen runs in
several dimensions the fit is unsure: it often gives a parameter that matters a long length
scale, and expected improvement then barely explores along it. Here the acquisition is the
expected improvement averaged over :data:`N_DRAWS` draws of the kernel parameters from their
posterior (Snoek, Larochelle and Adams 2012, "integrated acquisition"); each draw's
acquisition is Optuna's (log-EI, or q-batch log-EI over the pending runs, so parallel agents
still spread out), computed here for all draws at once and tested equal to Optuna's own. The
draws come from a random-walk Metropolis chain in log space started at Optuna's fit, under
Optuna's priors, seeded from the sampler's seed.

Once there are :data:`RUNS_PER_DIMENSION` finished runs per searched dimension the fit is
trusted as Optuna trusts it: by then the data pin the kernel down, and averaging would only
keep exploring where the model is sure, at the cost of the optimum's last digits. From then
on the fit's noise floor is also lowered (:data:`REFINING_NOISE_VAR`), so that a nearly
noiseless metric is resolved finely near its optimum.

Measured in ``bench/search_quality.py`` (bench/README.md): on Hartmann-6 with four runs
pending it finds the global basin within 50 runs more often than the single fit, and with
the two measures above it refines the optimum of an easy function (Branin) more closely than
Optuna's own GP sampler.

It reaches into Optuna's GP internals (``optuna._gp``) through one method of ``GPSampler``,
``_get_acqf_and_best_params``, and sets the floor through its ``_minimum_noise`` attribute;
:func:`hook_available` says whether the installed Optuna has the method in the form used
here, and the plain ``GPSampler`` is used otherwise (tests check both, so that an Optuna
upgrade that moves them is noticed).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from optuna import Study
from optuna._gp import acqf as optuna_acqf
from optuna._gp import gp as optuna_gp
from optuna._gp import prior as optuna_prior
from optuna._gp.qmc import sample_from_normal_sobol
from optuna._gp.thread_limiting import limit_threads_in_optimization
from optuna.distributions import BaseDistribution
from optuna.samplers import GPSampler
from optuna.trial import FrozenTrial, TrialState

from sweepherd.search._samplers import KnownSpaceGPSampler

#: Kernel-parameter draws the acquisition is averaged over (its cost grows with it).
N_DRAWS = 8
#: Finished runs per searched dimension from which Optuna's single fit is trusted instead:
#: about the size Loeppky, Sacks and Welch (2009) found a GP's parameters need to be pinned
#: down (their "n = 10d" rule). Beyond it averaging only keeps exploring where the fit is
#: already sure, which costs the optimum's last digits (bench/README.md).
RUNS_PER_DIMENSION = 10
#: Metropolis steps per suggestion; the first half adapts the step size and is dropped.
N_STEPS = 400
#: The least noise variance the fit may find (the metric standardised) once it is trusted.
#: Optuna's floor, 1e-6, is jitter for its Cholesky factors, but it also caps how finely a
#: deterministic or nearly noiseless metric is resolved near its optimum; a noisy metric's
#: noise is fitted far above either. While runs are few the floor stays Optuna's: a lower one
#: there let the fits interpolate and found Hartmann-6's basin less often (bench/README.md).
#: In float64 a 200-run kernel matrix stays well conditioned with it (its condition number
#: is below about 1e11 at the usual kernel scales; sweeps to 200 runs measured, no failure).
REFINING_NOISE_VAR = 1e-8
#: The floor while the acquisition is averaged: Optuna's.
_FLOOR = optuna_prior.DEFAULT_MINIMUM_NOISE_VAR
#: Optuna's: added to variances so that square roots and Cholesky factors stay defined.
_STABILIZING_NOISE = 1e-12
_EPS = 1e-12  # Optuna's floor for an improvement before its log
#: Candidates evaluated per batched step (a step holds draws x candidates x QMC samples).
_CHUNK = 256
#: A log-space kernel parameter beyond this is refused by the chain (exp would overflow).
_RAW_LIMIT = 20.0
#: The hook's parameters as of Optuna 5 (checked once; see :func:`hook_available`).
_HOOK_PARAMS = (
    "self",
    "completed_trials",
    "gprs_list",
    "internal_search_space",
    "normalized_params",
    "normalized_params_of_running_trials",
    "standardized_score_vals",
)


def refining(n_finished: int, n_dims: int) -> bool:
    """True once the fit is trusted: :data:`RUNS_PER_DIMENSION` finished runs per dimension."""
    return n_finished >= RUNS_PER_DIMENSION * n_dims


@functools.cache
def hook_available() -> bool:
    """True when the installed Optuna's ``GPSampler`` has the hook this module overrides."""
    hook = getattr(GPSampler, "_get_acqf_and_best_params", None)
    if hook is None:
        return False
    try:
        names = tuple(inspect.signature(hook).parameters)
    except (TypeError, ValueError):
        return False
    return names == _HOOK_PARAMS


def posterior_draws(
    fitted: optuna_gp.GPRegressor, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """``n_draws`` kernel-parameter sets for ``fitted``'s data, drawn from their posterior.

    Each row holds the logs of the inverse squared length scales, the kernel scale and the
    noise above Optuna's minimum; the chain runs on those logs, so its target density carries
    the log's Jacobian.
    """
    theta = np.concatenate(
        [
            np.log(fitted.inverse_squared_lengthscales.detach().numpy()),
            [
                math.log(fitted.kernel_scale.item()),
                # A fit at the noise floor (a deterministic function) has almost nothing
                # above it; a start beyond _RAW_LIMIT would leave the chain stuck at the fit,
                # so it starts at most the floor's own size above the floor.
                math.log(max(fitted.noise_var.item() - _FLOOR, _FLOOR)),
            ],
        ]
    )
    density = _LogDensity(fitted)
    log_density = density(theta)
    step = 0.5 / math.sqrt(len(theta))
    burn_in = N_STEPS // 2
    thin = max(1, (N_STEPS - burn_in) // n_draws)
    draws: list[np.ndarray] = []
    for i in range(N_STEPS):
        proposal = theta + step * rng.standard_normal(len(theta))
        proposed = density(proposal)
        accepted = math.log(rng.random_sample() + 1e-300) < proposed - log_density
        if accepted:
            theta, log_density = proposal, proposed
        if i < burn_in:
            step *= 1.05 if accepted else 0.97  # settles near a 0.4 acceptance rate
        elif (i - burn_in) % thin == thin - 1 and len(draws) < n_draws:
            draws.append(theta)
    return np.array(draws)


class _LogDensity:
    """Log posterior density of log kernel parameters on ``fitted``'s data (up to a constant).

    One regressor serves every step of the chain, its parameters set in place as Optuna's own
    fit sets them: a new one per step would recompute the data's pairwise distances each time
    (a quarter of the chain's time at 200 runs).
    """

    def __init__(self, fitted: optuna_gp.GPRegressor) -> None:
        self._gpr = optuna_gp.GPRegressor(
            is_categorical=fitted._is_categorical,
            X_train=fitted._X_train,
            y_train=fitted._y_train.squeeze(-1),
            inverse_squared_lengthscales=fitted.inverse_squared_lengthscales,
            kernel_scale=fitted.kernel_scale,
            noise_var=fitted.noise_var,
        )
        self._n_dims = fitted.inverse_squared_lengthscales.shape[0]

    def __call__(self, theta: np.ndarray) -> float:
        if not np.all(np.abs(theta) < _RAW_LIMIT):
            return -math.inf
        raw = torch.from_numpy(theta)
        gpr, n_dims = self._gpr, self._n_dims
        gpr.inverse_squared_lengthscales = torch.exp(raw[:n_dims])
        gpr.kernel_scale = torch.exp(raw[n_dims])
        gpr.noise_var = torch.exp(raw[n_dims + 1]) + _FLOOR
        try:
            with torch.no_grad():
                value = gpr.marginal_log_likelihood() + optuna_prior.default_log_prior(gpr)
        except RuntimeError:  # not positive definite: a parameter set the data rule out
            return -math.inf
        total = value.item() + float(theta.sum())
        return total if math.isfinite(total) else -math.inf


class DrawnGPs:
    """The GPs of all the draws at once, on ``fitted``'s data: posteriors batched over draws.

    One batched computation instead of one GP per draw: the acquisition is evaluated hundreds
    of times per suggestion, and per-draw tensors would multiply torch's per-call overhead.
    """

    def __init__(self, fitted: optuna_gp.GPRegressor, draws: np.ndarray) -> None:
        n_dims = draws.shape[1] - 2
        raw = torch.from_numpy(draws)
        self.inverse_squared_lengthscales = torch.exp(raw[:, :n_dims])  # (K, d)
        self.kernel_scale = torch.exp(raw[:, n_dims])  # (K,)
        noise = torch.exp(raw[:, n_dims + 1]) + _FLOOR
        self.is_categorical = fitted._is_categorical
        self.X = fitted._X_train  # (n, d)
        cov = self.kernel(self.X, self.X)  # (K, n, n)
        cov.diagonal(dim1=-2, dim2=-1).add_(noise.unsqueeze(-1))
        self.chol = torch.linalg.cholesky(cov)
        y = fitted._y_train.reshape(1, -1, 1).expand(len(draws), -1, 1)
        self.weights = torch.cholesky_solve(y, self.chol).squeeze(-1)  # (K, n): cov^-1 y

    def kernel(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Matern 5/2 between ``a`` (..., m, d) and ``b`` (p, d) for every draw: (K, ..., m, p)."""
        sqd = (a.unsqueeze(-2) - b).square()
        if self.is_categorical.any():
            sqd[..., self.is_categorical] = (sqd[..., self.is_categorical] > 0.0).double()
        scaled = sqd.matmul(self.inverse_squared_lengthscales.T).movedim(-1, 0)
        matern52: Callable[[torch.Tensor], torch.Tensor] = optuna_gp.Matern52Kernel.apply
        return matern52(scaled) * self.kernel_scale.reshape((-1,) + (1,) * (scaled.dim() - 1))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean and variance at ``x`` (m, d) for every draw, (K, m) each, and the whitened
        cross-covariance with the data (K, n, m) that conditioning on more points needs."""
        k_xX = self.kernel(x, self.X)  # (K, m, n)
        mean = (k_xX * self.weights.unsqueeze(-2)).sum(-1)
        white = torch.linalg.solve_triangular(self.chol, k_xX.transpose(-1, -2), upper=False)
        var = (self.kernel_scale.unsqueeze(-1) - white.square().sum(-2)).clamp_min(0.0)
        return mean, var, white


class DrawsLogEI(optuna_acqf.BaseAcquisitionFunc):
    """Log expected improvement averaged over the draws (in probability, not in logs).

    Without pending runs, each draw's is Optuna's log-EI. With them, each draw's is Optuna's
    q-batch log-EI: fantasy values at the pending points, drawn with fixed quasi-random normals
    (the same for every draw), and the candidate's value conditioned on them; the improvement
    is the best over the batch.
    """

    def __init__(
        self,
        gps: DrawnGPs,
        like: optuna_acqf.BaseAcquisitionFunc,
        threshold: float,
        pending: np.ndarray | None,
        n_qmc_samples: int,
        qmc_seed: int,
    ) -> None:
        super().__init__(like.length_scales, like.search_space)
        self.gps = gps
        self.threshold = threshold
        self.pending: torch.Tensor | None = None
        if pending is None:
            return
        self.pending = torch.from_numpy(pending)  # (r, d)
        r = self.pending.shape[0]
        normals = sample_from_normal_sobol(dim=r + 1, n_samples=n_qmc_samples, seed=qmc_seed)
        self.candidate_normals = normals[:, -1]  # (Q,)
        with torch.no_grad():
            mean_r, _, self.white_r = gps.posterior(self.pending)  # (K, r), (K, n, r)
            cov_rr = gps.kernel(self.pending, self.pending) - self.white_r.transpose(-1, -2).matmul(
                self.white_r
            )
            cov_rr.diagonal(dim1=-2, dim2=-1).add_(_STABILIZING_NOISE)
            self.chol_r = torch.linalg.cholesky(cov_rr)  # (K, r, r)
            shift = normals[:, :r].matmul(self.chol_r.transpose(-1, -2))  # (K, Q, r)
            self.fantasies = mean_r.unsqueeze(-2) + shift
            # cov_rr^-1 (fantasy - mean), per draw: (K, r, Q)
            self.fantasy_weights = torch.cholesky_solve(shift.transpose(-1, -2), self.chol_r)

    def eval_acqf(self, x: torch.Tensor) -> torch.Tensor:
        single = x.dim() == 1
        xs = x.unsqueeze(0) if single else x  # (m, d)
        if xs.shape[0] > _CHUNK:  # the 2,048 first candidates: bounded memory per step
            parts = [xs[i : i + _CHUNK] for i in range(0, xs.shape[0], _CHUNK)]
            return torch.cat([self._eval(part) for part in parts])
        out = self._eval(xs)
        result: torch.Tensor = out.squeeze(0) if single else out
        return result

    def _eval(self, xs: torch.Tensor) -> torch.Tensor:
        mean, var, white = self.gps.posterior(xs)  # (K, m), (K, m), (K, n, m)
        n_draws = mean.shape[0]
        if self.pending is None:
            per_draw = optuna_acqf.logei(mean, var + _STABILIZING_NOISE, self.threshold)
            out = torch.special.logsumexp(per_draw, dim=0) - math.log(n_draws)
        else:
            cov_xr = self.gps.kernel(xs, self.pending) - white.transpose(-1, -2).matmul(
                self.white_r
            )  # (K, m, r)
            cond_mean = mean.unsqueeze(-1) + cov_xr.matmul(self.fantasy_weights)  # (K, m, Q)
            whitened = torch.linalg.solve_triangular(
                self.chol_r, cov_xr.transpose(-1, -2), upper=False
            )  # (K, r, m)
            cond_var = (var + _STABILIZING_NOISE - whitened.square().sum(-2)).clamp_min(0.0)
            values = cond_mean + cond_var.sqrt().unsqueeze(-1) * self.candidate_normals
            fantasies = self.fantasies.unsqueeze(1).expand(-1, xs.shape[0], -1, -1)
            batch = torch.cat([fantasies, values.unsqueeze(-1)], dim=-1)  # (K, m, Q, r + 1)
            log_util = (batch - self.threshold).clamp_min(_EPS).log().amax(-1)  # (K, m, Q)
            out = torch.special.logsumexp(log_util, dim=(0, 2)) - math.log(
                n_draws * log_util.shape[-1]
            )
        averaged: torch.Tensor = out
        return averaged


class MarginalGPSampler(KnownSpaceGPSampler):
    """:class:`KnownSpaceGPSampler` whose acquisition is averaged over kernel-parameter draws
    (see the module doc). Only Optuna's single-objective log-EI and q-batch log-EI are
    replaced: that is every sweep; anything else keeps Optuna's acquisition."""

    _refining = False  # this suggestion's phase: past 10 finished runs per dimension

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Optuna's, its fit given the floor of the phase the sweep is in, and torch on one
        thread throughout: Optuna limits its threads only around its fit and local search,
        and the draws' batched tensors would otherwise spread over every core (spinning, and
        slower, when the cores are busy)."""
        n_finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        # Decided once, before the fit (which reads the floor), for the hook to follow.
        self._refining = refining(n_finished, len(search_space))
        self._minimum_noise = REFINING_NOISE_VAR if self._refining else _FLOOR
        with limit_threads_in_optimization():
            return super().sample_relative(study, trial, search_space)

    def _get_acqf_and_best_params(
        self,
        completed_trials: Any,
        gprs_list: list[optuna_gp.GPRegressor],
        internal_search_space: Any,
        normalized_params: np.ndarray,
        normalized_params_of_running_trials: np.ndarray | None,
        standardized_score_vals: np.ndarray,
    ) -> tuple[Any, np.ndarray | None]:
        acqf, best_params = super()._get_acqf_and_best_params(
            completed_trials,
            gprs_list,
            internal_search_space,
            normalized_params,
            normalized_params_of_running_trials,
            standardized_score_vals,
        )
        if type(acqf) not in (optuna_acqf.LogEI, optuna_acqf.qLogEI):
            return acqf, best_params
        if self._refining:
            return acqf, best_params
        seed = int(self._rng.rng.randint(1 << 30))  # as Optuna draws its QMC seeds
        draws = posterior_draws(gprs_list[0], N_DRAWS, np.random.RandomState(seed))
        averaged = DrawsLogEI(
            DrawnGPs(gprs_list[0], draws),
            like=acqf,
            threshold=float(standardized_score_vals[:, 0].max()),
            pending=normalized_params_of_running_trials,
            n_qmc_samples=self._n_qmc_samples_qei,
            qmc_seed=seed,
        )
        return averaged, best_params
