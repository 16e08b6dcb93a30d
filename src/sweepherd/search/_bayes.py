"""Bayesian search: a model of the metric over past runs proposes the next points.

On every call the sweep's runs are turned into an in-memory Optuna study (``_study.py``) over
the parameters' space (``_space.py``), their metric warped so that the worse half is compressed
(``_warp.py``), and the sampler is asked for ``n`` trials. The default
sampler (``_samplers.auto_sampler``) starts with a space-filling design, then uses Optuna's GP
sampler while the history is short and torch is installed, and Optuna's multivariate TPE with
the constant liar otherwise. Pending runs (and the points already proposed in this call) are
RUNNING trials, which every phase keeps away from, so parallel agents and the ``n`` points of
one call spread out.

The sampler is a seam: :class:`BayesSearch` takes a ``make_sampler(seed, space)`` factory, so
another Optuna sampler can be put in without touching the rest.

Parallel agents stay apart even with equal ``rng`` states: the sampler's seed mixes a draw
from the ``rng`` with the number of runs, which differs between two claims of one sweep.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sweepherd.config._model import SweepConfig
from sweepherd.errors import ConfigError
from sweepherd.runs import Run
from sweepherd.search._sampling import sample
from sweepherd.search._values import to_params, value_key

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.samplers import BaseSampler

    from sweepherd.search._space import Dimension

#: ``make_sampler(seed, space) -> sampler``: how :class:`BayesSearch` gets its Optuna sampler;
#: ``space`` maps Optuna parameter names to their distributions (see ``_space.py``).
SamplerFactory = Callable[[int, Mapping[str, "BaseDistribution"]], "BaseSampler"]

#: How many times the sampler is asked for one point when it repeats a pending point...
MAX_ASKS_PER_POINT = 4
#: ...and then how many random draws are tried before a repeat is accepted.
MAX_RANDOM_DRAWS_PER_POINT = 64


class BayesSearch:
    """The ``bayes`` method. Needs ``metric``; imports Optuna only when first used."""

    def __init__(self, make_sampler: SamplerFactory | None = None) -> None:
        self.make_sampler = make_sampler  # None: ``_samplers.auto_sampler``

    def suggest(
        self, config: SweepConfig, runs: Sequence[Run], n: int, rng: np.random.Generator
    ) -> list[dict[str, Any]]:
        """``n`` points proposed by the sampler from the runs so far."""
        if config.metric is None:
            raise ConfigError(
                "method bayes needs a metric to optimise",
                hint="Add `metric: {name: <logged key>, goal: minimize|maximize}` to the config.",
            )
        from optuna.exceptions import ExperimentalWarning

        from sweepherd.search._samplers import auto_sampler
        from sweepherd.search._space import dimensions, distributions
        from sweepherd.search._study import build_study, quiet_optuna

        constants = {p.path: p.value for p in config.parameters if p.distribution == "constant"}
        dims = dimensions(config)
        if not dims or n <= 0:
            return [to_params(constants) for _ in range(max(n, 0))]
        seed = _seed(rng, len(runs))
        with warnings.catch_warnings(), quiet_optuna():
            warnings.simplefilter("ignore", ExperimentalWarning)
            dists = distributions(dims)
            sampler = (self.make_sampler or auto_sampler)(seed, dists)
            study = build_study(config, dims, runs, sampler)
            pending = {
                _point_key(dims, t.params)
                for t in study.get_trials(deepcopy=False)
                if not t.state.is_finished()
            }
            out: list[dict[str, Any]] = []
            for _ in range(n):
                params = _ask_new_point(study, dims, dists, pending, rng)
                flat = dict(constants)
                flat.update((d.param.path, d.to_value(params[d.name])) for d in dims)
                out.append(to_params(flat))
        return out


def _ask_new_point(
    study: optuna.Study,
    dims: Sequence[Dimension],
    dists: dict[str, BaseDistribution],
    pending: set[Hashable],
    rng: np.random.Generator,
) -> dict[str, Any]:
    """A trial's (internal) params that no pending run and no earlier point of this call has.

    The sampler is asked again a few times: a repeated point stays RUNNING in the study, so the
    constant liar pushes away from it. In a small discrete space that may not be enough; then
    points are drawn at random from the parameters' own distributions, and the first free one is
    made the next trial. Only when every draw is taken is a repeat accepted.
    """
    params: dict[str, Any] = {}
    for _ in range(MAX_ASKS_PER_POINT):
        params = study.ask(dists).params
        key = _point_key(dims, params)
        if key not in pending:
            pending.add(key)
            return params
    for _ in range(MAX_RANDOM_DRAWS_PER_POINT):
        drawn = {d.name: d.to_internal(sample(d.param, rng)) for d in dims}
        key = _point_key(dims, drawn)
        if key not in pending:
            study.enqueue_trial(drawn)
            pending.add(key)
            return study.ask(dists).params
    return params


def _seed(rng: np.random.Generator, n_runs: int) -> int:
    """A 32-bit sampler seed from the rng and the number of runs."""
    entropy = [int(rng.integers(2**63)), n_runs]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _point_key(dims: Sequence[Dimension], params: dict[str, Any]) -> Hashable:
    """Equal for two trials that give the same parameter values."""
    return tuple(value_key(d.to_value(params[d.name])) for d in dims)
