"""The Optuna samplers bayes search can use, built per call from a seed and the search space.

The default, :func:`auto_sampler`, picks the model by how much the sweep knows:

1. fewer than :data:`N_STARTUP` finished runs: a space-filling design (``_startup.py``): a
   Latin hypercube built one point at a time in the slices no run occupies yet, pending ones
   included, so parallel agents spread out;
2. up to :data:`GP_MAX_FINISHED` finished runs, when torch can be imported: Optuna's
   ``GPSampler`` (a Gaussian process with log expected improvement; pending runs enter as
   q-batch points, so it does not propose again where a parallel agent already is), with the
   expected improvement averaged over draws of the kernel's parameters instead of one fit
   until there are 10 finished runs per dimension, and the fit refined after
   (``_marginal_gp.py``). It is the strongest model on short histories, and its cost grows
   with the history;
3. otherwise: Optuna's multivariate TPE with the constant liar, whose cost grows slowly.

Kept apart from ``_bayes.py`` so that importing :mod:`sweepherd.search` does not import Optuna.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from optuna import Study
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, GPSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from sweepherd.search._startup import space_filling_point

#: Finished runs before a model is used; until then points come from the space-filling design.
N_STARTUP = 10
#: Above this many finished runs the GP is too slow for a claim (it runs under the sweep's
#: lock), and TPE takes over. Measured: bench/search_quality.py.
GP_MAX_FINISHED = 200


def tpe_sampler(seed: int, space: Mapping[str, BaseDistribution]) -> BaseSampler:
    """Multivariate TPE with the constant liar."""
    return KnownSpaceTPESampler(space, seed=seed, constant_liar=True, multivariate=True)


def gp_sampler(seed: int, space: Mapping[str, BaseDistribution]) -> BaseSampler:
    """Optuna's GP sampler (needs torch), its acquisition averaged over kernel-parameter
    draws where the installed Optuna allows it (``_marginal_gp.py``)."""
    cls: type[KnownSpaceGPSampler] = KnownSpaceGPSampler
    try:
        from sweepherd.search import _marginal_gp  # imports torch and Optuna's GP internals
    except ImportError:  # an Optuna whose GP internals are laid out otherwise
        pass
    else:
        if _marginal_gp.hook_available():
            cls = _marginal_gp.MarginalGPSampler
    return cls(space, seed=seed, n_startup_trials=N_STARTUP, warn_independent_sampling=False)


def auto_sampler(seed: int, space: Mapping[str, BaseDistribution]) -> BaseSampler:
    """The default of bayes search: startup design, then GP or TPE (see the module doc)."""
    return AutoSampler(space, seed)


@functools.cache
def torch_available() -> bool:
    """True when torch imports (GPSampler needs it); checked once per process."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError):  # OSError: a broken install (missing shared library)
        return False
    return True


def model_for(n_finished: int, *, has_torch: bool | None = None) -> str:
    """Which phase the default sampler is in: ``"startup"``, ``"gp"`` or ``"tpe"``."""
    if n_finished < N_STARTUP:
        return "startup"
    if n_finished <= GP_MAX_FINISHED and (torch_available() if has_torch is None else has_torch):
        return "gp"
    return "tpe"


class KnownSpaceTPESampler(TPESampler):
    """TPE told its search space instead of inferring it.

    TPE infers the space as the intersection of every past trial's distributions, which costs
    a quarter of a call at a thousand runs. Here every trial has the same fixed space, so the
    answer is known in advance (single-valued dimensions are left out, as TPE does).
    """

    def __init__(self, space: Mapping[str, BaseDistribution], **tpe_options: Any) -> None:
        super().__init__(**tpe_options)
        self._known_space = {k: d for k, d in space.items() if not d.single()}

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The fixed space of the sweep's parameters."""
        return dict(self._known_space)


class KnownSpaceGPSampler(GPSampler):
    """Optuna's GP sampler told its search space (see :class:`KnownSpaceTPESampler`)."""

    def __init__(self, space: Mapping[str, BaseDistribution], **gp_options: Any) -> None:
        super().__init__(**gp_options)
        self._known_space = {k: d for k, d in space.items() if not d.single()}

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The fixed space of the sweep's parameters."""
        return dict(self._known_space)


class AutoSampler(BaseSampler):
    """Startup design, then GP (short history, torch present) or TPE; see the module doc.

    Built for one call of the search: the phase is chosen on first use from the number of
    finished trials, which does not change while the call asks its points.
    """

    def __init__(self, space: Mapping[str, BaseDistribution], seed: int) -> None:
        self._space = {k: d for k, d in space.items() if not d.single()}
        self._seed = seed
        self._model: BaseSampler | None = None
        self._phase: str | None = None

    @property
    def phase(self) -> str | None:
        """``"startup"``, ``"gp"`` or ``"tpe"`` once chosen; None before the first ask."""
        return self._phase

    def _chosen(self, study: Study) -> BaseSampler | None:
        """The model sampler of this call, or None during the startup design."""
        if self._phase is None:
            trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            self._phase = model_for(len(trials))
            if self._phase == "gp":
                self._model = gp_sampler(self._seed, self._space)
            elif self._phase == "tpe":
                self._model = tpe_sampler(self._seed, self._space)
        return self._model

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        """The fixed space of the sweep's parameters."""
        return dict(self._space)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """A point from the startup design or from the chosen model."""
        model = self._chosen(study)
        if model is not None:
            return model.sample_relative(study, trial, search_space)
        trials = study.get_trials(deepcopy=False)
        others = [t.params for t in trials if t.number != trial.number and t.params]
        seed = (self._seed, len(trials))
        return space_filling_point(search_space, others, seed=seed, n_bins=N_STARTUP)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        """Parameters outside the known space (none in a sweep): drawn as the model draws."""
        model = self._chosen(study) or tpe_sampler(self._seed, self._space)
        return model.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        model = self._chosen(study)
        if model is not None:
            model.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if self._model is not None:
            self._model.after_trial(study, trial, state, values)
