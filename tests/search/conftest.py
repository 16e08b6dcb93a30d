"""Fixtures for the search tests: configs from W&B mappings, runs, and the W&B engine as oracle.

Configs are built here directly from the same mapping the W&B engine gets, inferring the
distribution as W&B does (``value`` → constant, ``values`` → categorical, ints → int_uniform,
else uniform) and filling W&B's schema defaults (``q: 1.0``, ``mu: 0``, ``sigma: 1``, ``a = b =
1``), so the search package is tested on its own, independent of config validation.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from sweepherd.config._model import Metric, Param, SweepConfig
from sweepherd.runs import Run, RunState

_DEFAULTS: dict[str, dict[str, Any]] = {
    "q_uniform": {"q": 1.0},
    "q_log_uniform_values": {"q": 1.0},
    "normal": {"mu": 0.0, "sigma": 1.0},
    "q_normal": {"mu": 0, "sigma": 1, "q": 1.0},
    "log_normal": {"mu": 0.0, "sigma": 1.0},
    "q_log_normal": {"mu": 0, "sigma": 1, "q": 1.0},
    "beta": {"a": 1, "b": 1},
    "q_beta": {"a": 1, "b": 1, "q": 1.0},
}


def _params(raw: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[Param]:
    for name, spec in raw.items():
        path = (*prefix, name)
        if "parameters" in spec:
            yield from _params(spec["parameters"], path)
            continue
        dist = spec.get("distribution")
        if dist is None:
            if "value" in spec:
                dist = "constant"
            elif "values" in spec:
                dist = "categorical"
            elif isinstance(spec["min"], int) and isinstance(spec["max"], int):
                dist = "int_uniform"
            else:
                dist = "uniform"
        fields = {
            **_DEFAULTS.get(dist, {}),
            **{k: v for k, v in spec.items() if k != "distribution"},
        }
        if "values" in fields:
            fields["values"] = tuple(fields["values"])
        if "probabilities" in fields:
            fields["probabilities"] = tuple(fields["probabilities"])
        yield Param(path=path, distribution=dist, **fields)


def build_config(raw: Mapping[str, Any]) -> SweepConfig:
    metric = raw.get("metric")
    return SweepConfig(
        raw=raw,
        method=raw["method"],
        parameters=tuple(_params(raw["parameters"])),
        metric=Metric(**metric) if metric else None,
        run_cap=raw.get("run_cap"),
    )


_ids = itertools.count()


def build_run(
    params: Mapping[str, Any],
    state: RunState = RunState.FINISHED,
    metric: float | None = None,
    run_id: str | None = None,
) -> Run:
    seq = next(_ids)
    return Run(id=run_id or f"r{seq}", params=params, state=state, seq=seq, metric=metric)


@pytest.fixture
def make_config() -> Callable[[Mapping[str, Any]], SweepConfig]:
    """``make_config(raw)``: a SweepConfig from a W&B config mapping."""
    return build_config


@pytest.fixture
def make_run() -> Callable[..., Run]:
    """``make_run(params, state=finished, metric=None, run_id=None)``."""
    return build_run


def _import_sweeps() -> Any:
    """W&B's engine (the test oracle), imported without its pydantic-v1 deprecation noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
        import sweeps.params
    return sweeps


def wandb_runs(runs: Sequence[Run]) -> list[Any]:
    """The runs in W&B's wire format, ``{"p": {"value": v}}`` (nested dicts inside the value)."""
    sweeps = _import_sweeps()

    state = {
        RunState.RUNNING: "running",
        RunState.FINISHED: "finished",
        RunState.FAILED: "failed",
        RunState.STOPPED: "finished",
        RunState.PREEMPTED: "preempted",
        RunState.LOST: "crashed",
        RunState.KILLED: "killed",
    }
    return [
        sweeps.SweepRun(
            name=r.id,
            config={k: {"value": v} for k, v in r.params.items()},
            state=state[r.state],
        )
        for r in runs
    ]


def oracle_next(raw: Mapping[str, Any], runs: Sequence[Run], n: int) -> list[dict[str, Any] | None]:
    """W&B's ``next_runs`` for the raw config: each suggestion's plain params, or None."""
    sweeps = _import_sweeps()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = sweeps.next_runs(dict(raw), wandb_runs(runs), n=n)
    return [None if r is None else {k: v["value"] for k, v in r.config.items()} for r in out]


@pytest.fixture
def oracle() -> Callable[[Mapping[str, Any], Sequence[Run], int], list[dict[str, Any] | None]]:
    """``oracle(raw, runs, n)``: W&B's engine's next runs (plain dicts, None when exhausted)."""
    return oracle_next


@pytest.fixture
def import_sweeps() -> Callable[[], Any]:
    """``import_sweeps()``: W&B's engine module (the oracle), imported quietly."""
    return _import_sweeps
