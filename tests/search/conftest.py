"""Fixtures for the search tests: configs from W&B mappings, runs, and the W&B engine as oracle.

Configs are built here directly from the same mapping the W&B engine gets, inferring the
distribution as W&B does (``value`` → constant, ``values`` → categorical, ints → int_uniform,
else uniform) and filling W&B's schema defaults (``q: 1.0``, ``mu: 0``, ``sigma: 1``, ``a = b =
1``), so the search package is tested on its own, independent of config validation.
"""

from __future__ import annotations

import copy
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
    "q_normal": {"mu": 0.0, "sigma": 1.0, "q": 1.0},
    "log_normal": {"mu": 0.0, "sigma": 1.0},
    "q_log_normal": {"mu": 0.0, "sigma": 1.0, "q": 1.0},
    "beta": {"a": 1.0, "b": 1.0},
    "q_beta": {"a": 1.0, "b": 1.0, "q": 1.0},
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


def checked_config(raw: Mapping[str, Any]) -> SweepConfig:
    """The config that ``sweepherd.config.parse_config`` makes, checked against this module's
    own reading of W&B's rules, so the tests search exactly what a real sweep would."""
    from sweepherd.config import parse_config

    ours = build_config(raw)
    real = parse_config(copy.deepcopy(dict(raw)))
    assert real.parameters == ours.parameters
    for a, b in zip(real.parameters, ours.parameters, strict=True):  # types too: 1 is not 1.0
        assert {k: type(v) for k, v in vars(a).items()} == {k: type(v) for k, v in vars(b).items()}
    return real


@pytest.fixture
def make_config() -> Callable[[Mapping[str, Any]], SweepConfig]:
    """``make_config(raw)``: a SweepConfig from a W&B config mapping (see checked_config)."""
    return checked_config


@pytest.fixture
def make_unvalidated_config() -> Callable[[Mapping[str, Any]], SweepConfig]:
    """``make_unvalidated_config(raw)``: for configs validation refuses, to test the search's own
    defences against them."""
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


_EVERY_DISTRIBUTION: dict[str, Any] = {
    "const": {"value": 3},
    "cat": {"values": ["a", 1, None, {"k": [1]}]},
    "catp": {"values": [1, 2], "probabilities": [0.3, 0.7]},
    "iu": {"min": 1, "max": 9},
    "u": {"min": 0, "max": 1.0},
    "qu_int": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 2},
    "qu": {"distribution": "q_uniform", "min": 0, "max": 10},
    "lu": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1},
    "ilu": {"distribution": "inv_log_uniform_values", "min": 1, "max": 100},
    "qlu": {"distribution": "q_log_uniform_values", "min": 1, "max": 1000, "q": 8},
    "opt": {
        "parameters": {
            "n": {"distribution": "normal", "mu": 1, "sigma": 2},
            "qn": {"distribution": "q_normal", "q": 0.25},
            "ln": {"distribution": "log_normal"},
            "deeper": {
                "parameters": {
                    "qln": {"distribution": "q_log_normal", "q": 1},
                    "b": {"distribution": "beta", "a": 2, "b": 2},
                    "qb": {"distribution": "q_beta", "q": 0.05},
                }
            },
        }
    },
}


@pytest.fixture
def every_distribution() -> dict[str, Any]:
    """A W&B ``parameters:`` mapping with every distribution, nested two levels deep."""
    return copy.deepcopy(_EVERY_DISTRIBUTION)
