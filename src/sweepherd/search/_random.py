"""Random search: every parameter drawn independently from its distribution.

As in W&B, past runs are ignored and points are drawn with replacement: in a small discrete
space two runs may get the same point. Parallel agents differ because each draws from its own
``rng``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sweepherd.config._model import SweepConfig
from sweepherd.runs import Run
from sweepherd.search._sampling import sample
from sweepherd.search._values import to_params


class RandomSearch:
    """The ``random`` method."""

    def suggest(
        self, config: SweepConfig, runs: Sequence[Run], n: int, rng: np.random.Generator
    ) -> list[dict[str, Any]]:
        """``n`` points drawn from the parameters' distributions."""
        return [to_params({p.path: sample(p, rng) for p in config.parameters}) for _ in range(n)]
