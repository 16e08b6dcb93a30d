"""The Optuna samplers bayes search can use, built per call from a seed and the search space.

Kept apart from ``_bayes.py`` so that importing :mod:`sweepherd.search` does not import Optuna.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna import Study
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import FrozenTrial


def tpe_sampler(seed: int, space: Mapping[str, BaseDistribution]) -> BaseSampler:
    """Multivariate TPE with the constant liar: the default sampler of bayes search."""
    return KnownSpaceTPESampler(space, seed=seed, constant_liar=True, multivariate=True)


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
