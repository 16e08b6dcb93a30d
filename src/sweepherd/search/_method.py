"""What a search method is, and the registry of the methods W&B configs can name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from sweepherd.config._model import SweepConfig
from sweepherd.errors import ConfigError
from sweepherd.runs import Run
from sweepherd.search._bayes import BayesSearch
from sweepherd.search._grid import GridSearch
from sweepherd.search._random import RandomSearch


class SearchMethod(Protocol):
    """A search method: a pure function of the config and the sweep's runs.

    ``suggest`` returns up to ``n`` new parameter dicts (nested, plain Python values), fewer
    only when the method has nothing left to suggest. It reads no files and no clock; its only
    randomness is ``rng``.
    """

    def suggest(
        self, config: SweepConfig, runs: Sequence[Run], n: int, rng: np.random.Generator
    ) -> list[dict[str, Any]]:
        """Up to ``n`` new points; see the class docstring."""
        ...


#: The search methods by their ``method:`` name in the sweep config.
METHODS: Mapping[str, SearchMethod] = MappingProxyType(
    {"grid": GridSearch(), "random": RandomSearch(), "bayes": BayesSearch()}
)


def method(name: str) -> SearchMethod:
    """The method called ``name``; :class:`ConfigError` naming the known ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(
            f"unknown search method {name!r}",
            hint=f"Set `method:` to one of: {', '.join(METHODS)}.",
        ) from None
