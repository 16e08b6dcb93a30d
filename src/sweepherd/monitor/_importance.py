"""Which parameters matter: importance of each parameter for the sweep's metric.

Two methods, and the result always says which one was used:

- ``random forest``: with scikit-learn installed, a random forest (100 trees, fixed seed) is
  fitted to predict the metric from the parameters, and each parameter's importance is its
  share of the forest's impurity decrease (``feature_importances_``, summing to 1). Like
  W&B's parameter-importance panel. Impurity importance favours parameters with many distinct
  values; treat small differences as noise.
- ``variance explained``: without scikit-learn, each parameter's first-order effect alone:
  the fraction of the metric's variance explained by grouping the runs by the parameter's
  value (numeric parameters in up to 5 quantile bins) — one-way ANOVA's eta squared, a
  "fANOVA-lite" that ignores interactions. Computed with numpy.

Both come with the Spearman rank correlation of each numeric parameter with the metric (its
sign says whether larger values raise or lower the metric). Only runs that reported the metric
(finished or stopped early) count; parameters with a single value are left out.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweepherd.config import SweepConfig, flatten
from sweepherd.runs import Run, RunState

#: Fewer runs with a metric than this and no importance is computed.
MIN_RUNS = 5
METHOD_FOREST = "random forest (scikit-learn, impurity importance)"
METHOD_VARIANCE = "variance explained by each parameter alone (eta squared, numpy)"


@dataclass(frozen=True)
class ParamImportance:
    """One parameter's importance and its rank correlation with the metric."""

    name: str
    importance: float
    correlation: float | None  # Spearman's rho; None for a categorical parameter


@dataclass(frozen=True)
class ImportanceResult:
    """The importances, most important first, and how they were computed."""

    method: str | None  # None when nothing could be computed
    params: tuple[ParamImportance, ...] = ()
    n_runs: int = 0
    note: str | None = None  # why nothing (or less) was computed


def sklearn_installed() -> bool:
    return importlib.util.find_spec("sklearn") is not None


def param_importance(
    config: SweepConfig, runs: Iterable[Run], *, method: str | None = None
) -> ImportanceResult:
    """Importance of each parameter for the metric; ``method`` forces ``"forest"`` or
    ``"variance"`` (default: the forest when scikit-learn is installed)."""
    if config.metric is None:
        return ImportanceResult(None, note="the sweep has no metric")
    scored = [
        r for r in runs if r.state in (RunState.FINISHED, RunState.STOPPED) and r.metric is not None
    ]
    if len(scored) < MIN_RUNS:
        return ImportanceResult(
            None,
            n_runs=len(scored),
            note=f"needs at least {MIN_RUNS} runs with {config.metric.name} ({len(scored)} so far)",
        )
    y = np.array([float(r.metric or 0.0) for r in scored])
    if float(np.ptp(y)) == 0.0:
        return ImportanceResult(None, n_runs=len(scored), note="every run has the same metric")
    columns: list[tuple[str, list[Any]]] = []
    for param in config.parameters:
        values = [flatten(r.params, [param]).get(param.path) for r in scored]
        if len({_key(v) for v in values}) > 1:
            columns.append((param.name, values))
    if not columns:
        return ImportanceResult(None, n_runs=len(scored), note="no parameter varies")
    use_forest = sklearn_installed() if method is None else method == "forest"
    features = [_encode(values) for _, values in columns]
    if use_forest:
        scores = _forest(np.column_stack([f for f, _ in features]), y)
        used = METHOD_FOREST
    else:
        scores = [_eta_squared(f, numeric, y) for f, numeric in features]
        used = METHOD_VARIANCE
    rows = [
        ParamImportance(name, float(score), _spearman(f, y) if numeric else None)
        for (name, _), (f, numeric), score in zip(columns, features, scores, strict=True)
    ]
    rows.sort(key=lambda p: (-p.importance, p.name))
    return ImportanceResult(used, tuple(rows), len(scored))


def _key(value: Any) -> str:
    return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _encode(values: Sequence[Any]) -> tuple[np.ndarray, bool]:
    """A numeric feature and whether the parameter is numeric (else: codes of its categories)."""
    if all(_is_number(v) for v in values):
        return np.array([float(v) for v in values]), True
    codes: dict[str, int] = {}
    return np.array([float(codes.setdefault(_key(v), len(codes))) for v in values]), False


def _forest(x: np.ndarray, y: np.ndarray) -> list[float]:
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(n_estimators=100, random_state=0, n_jobs=1)
    forest.fit(x, y)
    return [float(v) for v in forest.feature_importances_]


def _eta_squared(feature: np.ndarray, numeric: bool, y: np.ndarray, n_bins: int = 5) -> float:
    """Fraction of ``y``'s variance explained by the groups of ``feature``."""
    if numeric and len(np.unique(feature)) > n_bins:
        edges = np.quantile(feature, np.linspace(0, 1, n_bins + 1)[1:-1])
        groups = np.searchsorted(edges, feature, side="right")
    else:
        groups = np.unique(feature, return_inverse=True)[1]
    total = float(np.sum((y - y.mean()) ** 2))
    between = 0.0
    for g in np.unique(groups):
        member = y[groups == g]
        between += len(member) * float(member.mean() - y.mean()) ** 2
    return between / total if total > 0 else 0.0


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if float(np.std(rx)) == 0.0 or float(np.std(ry)) == 0.0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])
