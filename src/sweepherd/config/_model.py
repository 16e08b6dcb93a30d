"""The validated, normalised form of a W&B sweep configuration.

:func:`sweepherd.config.parse_config` turns the user's ``sweep.yaml`` into a
:class:`SweepConfig`. Everything downstream (search, early termination, the agent) reads this
object, never the raw mapping, so defaults and inferred distributions are decided in one place.
The raw mapping is kept verbatim in :attr:`SweepConfig.raw`: it is what the sweep directory
stores and what W&B's own tools would read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Goal = Literal["minimize", "maximize"]

#: Every distribution name W&B accepts and sweepherd supports, after inference.
#: The deprecated exponent forms (``log_uniform``, ``q_log_uniform``, ``inv_log_uniform``) are
#: rejected by validation with a message naming the replacement, as W&B's config check does.
DISTRIBUTIONS: tuple[str, ...] = (
    "constant",
    "categorical",
    "int_uniform",
    "uniform",
    "q_uniform",
    "log_uniform_values",
    "q_log_uniform_values",
    "inv_log_uniform_values",
    "normal",
    "q_normal",
    "log_normal",
    "q_log_normal",
    "beta",
    "q_beta",
)

#: The distributions a grid search can enumerate.
GRID_DISTRIBUTIONS: frozenset[str] = frozenset(
    {"constant", "categorical", "int_uniform", "q_uniform"}
)


@dataclass(frozen=True)
class Param:
    """One leaf parameter of the search space.

    ``path`` names it: ``("lr",)`` for a top-level parameter, ``("optimizer", "momentum")`` for
    one nested under ``parameters: {optimizer: {parameters: {momentum: ...}}}``. Only the fields
    that the distribution uses are set; W&B's defaults are already filled in: ``q=1.0`` (a
    float, so a q_ distribution without ``q`` yields floats, as in W&B), ``mu=0``, ``sigma=1``,
    ``a=b=1``. Numbers keep the type the user wrote (an int ``min`` stays an int).
    """

    path: tuple[str, ...]
    distribution: str
    value: Any = None  # constant
    values: tuple[Any, ...] | None = None  # categorical
    probabilities: tuple[float, ...] | None = None  # categorical, optional
    min: float | None = None  # int_uniform, uniform, q_uniform, *log_uniform_values
    max: float | None = None
    q: float | None = None  # q_* forms
    mu: float | None = None  # normal forms
    sigma: float | None = None
    a: float | None = None  # beta forms
    b: float | None = None

    @property
    def name(self) -> str:
        """The dotted name, used in messages and tables: ``optimizer.momentum``."""
        return ".".join(self.path)


@dataclass(frozen=True)
class Metric:
    """``metric:`` — what the sweep optimises."""

    name: str
    goal: Goal = "minimize"
    target: float | None = None
    #: bayes: the value used for a run that failed, crashed or was killed without the metric.
    impute: Literal["latest", "best", "worst"] = "worst"
    #: bayes: how running runs count; None is W&B's ``"false"`` (they count as pending).
    impute_while_running: Literal["latest", "best", "worst"] | None = None

    def better(self, a: float, b: float) -> bool:
        """True when value ``a`` is strictly better than ``b`` under the goal."""
        return a < b if self.goal == "minimize" else a > b

    def reached_target(self, value: float) -> bool:
        """True when ``value`` meets ``target`` (at or beyond it, in the goal's direction)."""
        if self.target is None:
            return False
        return value <= self.target if self.goal == "minimize" else value >= self.target


@dataclass(frozen=True)
class EarlyTerminate:
    """``early_terminate:`` — W&B hyperband. Either ``min_iter`` or ``max_iter`` and ``s``.

    When both are given, W&B's engine uses ``max_iter`` and ``s`` and ignores ``min_iter``.
    """

    type: Literal["hyperband"] = "hyperband"
    min_iter: int | None = None
    max_iter: int | None = None
    s: int | None = None
    eta: float = 3.0
    strict: bool = True


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep configuration."""

    raw: Mapping[str, Any]  # the mapping as the user wrote it
    method: Literal["grid", "random", "bayes"]
    parameters: tuple[Param, ...]  # leaf parameters, in the order they were written
    metric: Metric | None = None
    early_terminate: EarlyTerminate | None = None
    program: str | None = None
    command: tuple[str, ...] | None = None  # None: W&B's default command
    run_cap: int | None = None
    name: str | None = None
    description: str | None = None
    project: str | None = None
    entity: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # other keys W&B allows (apiVersion...)
    #: The file's text as the user wrote it (comments and all) when read by ``load_config``.
    text: str | None = field(default=None, compare=False, repr=False)

    def param(self, name: str) -> Param:
        """The parameter with this dotted name; KeyError if there is none."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)


def nest(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """Turn ``{("opt", "lr"): 0.1, ("bs",): 32}`` into ``{"opt": {"lr": 0.1}, "bs": 32}``."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out


def flatten(nested: Mapping[str, Any], params: Sequence[Param]) -> dict[tuple[str, ...], Any]:
    """Inverse of :func:`nest`, guided by the parameter paths (a dict *value* stays whole)."""
    out: dict[tuple[str, ...], Any] = {}
    for p in params:
        node: Any = nested
        for key in p.path:
            if not isinstance(node, Mapping) or key not in node:
                break
            node = node[key]
        else:
            out[p.path] = node
    return out
