"""Hyperband decisions, checked against W&B's own engine (``sweeps.stop_runs``) as the oracle."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sweepherd.config import EarlyTerminate, SweepConfig, parse_config
from sweepherd.early_terminate import Stop, bands, stops, thresholds, to_stop
from sweepherd.errors import ConfigError

_RUNNING = "running"


def _raw(early_terminate: Mapping[str, Any], goal: str = "minimize") -> dict[str, Any]:
    return {
        "method": "grid",
        "metric": {"name": "loss", "goal": goal},
        "early_terminate": {"type": "hyperband", **early_terminate},
        "parameters": {"a": {"values": [1, 2]}},
    }


def _et(raw: Mapping[str, Any]) -> EarlyTerminate:
    et = parse_config(dict(raw)).early_terminate
    assert et is not None
    return et


def _wandb_stops(
    raw: Mapping[str, Any], histories: Mapping[str, Sequence[float]], states: Mapping[str, str]
) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the engine's pydantic-v1 deprecation noise
        import sweeps

        runs = [
            sweeps.SweepRun(
                name=run_id,
                state=states[run_id],
                history=[{"loss": v, "_step": i} for i, v in enumerate(history)],
            )
            for run_id, history in histories.items()
        ]
        return {r.name for r in sweeps.stop_runs(dict(raw), runs)}


def _ours(
    raw: Mapping[str, Any], histories: Mapping[str, Sequence[float]], states: Mapping[str, str]
) -> set[str]:
    running = {run_id for run_id, s in states.items() if s == _RUNNING}
    return to_stop(parse_config(dict(raw)), histories, running)


def test_wandbs_docstring_example():
    """W&B's own example: max_iter 5, eta 2, s 2 gives bands [1, 2]."""
    raw = _raw({"max_iter": 5, "eta": 2, "s": 2})
    histories = {
        "a": [10, 9],  # finished
        "b": [10, 10],  # worse than the band-2 threshold: stop
        "c": [10, 8, 8],  # band 2: 8, the threshold itself (W&B's comment there says "stop")
        "d": [10, 7, 7],
        "e": [10, 6, 6],  # finished
    }
    states = {"a": "finished", "b": _RUNNING, "c": _RUNNING, "d": _RUNNING, "e": "finished"}
    assert bands(_et(raw)) == [1, 2]
    # band 2 values 9 10 8 7 6 -> sorted[int(5 * 0.5)] = 8; only a value above it stops
    assert _ours(raw, histories, states) == {"b"} == _wandb_stops(raw, histories, states)


@pytest.mark.parametrize(
    ("strict", "expected"), [(True, {"bad", "worse", "ok"}), (False, {"bad", "worse"})]
)
def test_strict_judges_the_value_at_the_band_not_the_best_so_far(strict, expected):
    raw = _raw({"min_iter": 2, "eta": 2, "strict": strict})
    histories = {
        "good": [0.9, 0.4, 0.35, 0.3],
        "good2": [0.9, 0.45],
        "good3": [0.9, 0.55],  # exactly the band-2 threshold: kept
        "ok": [0.3, 0.7, 0.6],  # band 2: 0.7 (strict) vs its best 0.3 (not strict)
        "bad": [1.0, 0.8, 0.85, 0.9],
        "worse": [1.2, 1.1],
        "fresh": [2.0],  # below the first band: never stopped yet
        "done": [0.8, 0.5, 0.5, 0.5, 0.5],
    }
    states = dict.fromkeys(histories, _RUNNING) | {"done": "finished"}
    # band 2: .4 .45 .5 .55 .7 .8 1.1 -> sorted[int(7 / 2)] = .55; band 4: .3 .5 .9 -> [1] = .5
    assert thresholds([2, 4, 8], list(histories.values()), 2) == [0.55, 0.5, math.inf]
    assert _ours(raw, histories, states) == expected == _wandb_stops(raw, histories, states)


def test_each_stop_says_what_was_compared_in_the_metrics_own_sign():
    histories = {"a": [0.9, 0.8, 0.7], "b": [0.5, 0.4], "c": [0.1, 0.2, 0.3]}
    strict = parse_config(_raw({"min_iter": 1, "eta": 2}, goal="maximize"))
    # band 2: .8 .4 .2 (negated: -.8 -.4 -.2) -> sorted[int(3 / 2)] = -.4, i.e. 0.4
    assert stops(strict, histories, {"a", "c"}) == {"c": Stop(2, 0.2, 0.4, 3, strict=True)}
    assert stops(strict, histories, {"c"})["c"].describe("acc") == (
        "stopped early by hyperband: acc 0.2 after 2 values was worse than 0.4, the cut-off "
        "among the 3 runs that got as far"
    )
    loose = parse_config(_raw({"min_iter": 1, "eta": 2, "strict": False}, goal="maximize"))
    # band 1: .9 .5 .1 -> .5 (c's best .3 is worse); band 2 is c's highest: its best .3 < .4
    assert stops(loose, histories, {"c"}) == {"c": Stop(2, 0.3, 0.4, 3, strict=False)}
    assert (
        stops(loose, histories, {"c"})["c"]
        .describe("acc")
        .startswith("stopped early by hyperband: best acc 0.3 after 2 values")
    )


def test_maximize_negates_the_values():
    raw = _raw({"min_iter": 1, "eta": 2}, goal="maximize")
    histories = {"hi": [0.9], "lo": [0.1], "mid": [0.5]}
    states = dict.fromkeys(histories, _RUNNING)
    assert _ours(raw, histories, states) == {"lo"} == _wandb_stops(raw, histories, states)


def test_finished_runs_set_thresholds_but_are_never_stopped():
    raw = _raw({"min_iter": 1, "eta": 3})
    histories = {"f1": [0.1], "f2": [0.2], "r": [5.0]}
    states = {"f1": "finished", "f2": "failed", "r": _RUNNING}
    assert _ours(raw, histories, states) == {"r"} == _wandb_stops(raw, histories, states)


def test_non_finite_values_are_skipped_and_do_not_count_as_iterations():
    raw = _raw({"min_iter": 2, "eta": 2})
    histories = {
        "a": [0.1, math.nan, 0.1],
        "b": [1.0, math.inf],
        "c": [0.5, 0.9],
        "d": [0.2, 0.3],
    }
    states = dict.fromkeys(histories, _RUNNING)
    # band 2: a .1 (not NaN), c .9, d .3 -> threshold .3; b has one value, so no band yet
    assert _ours(raw, histories, states) == {"c"} == _wandb_stops(raw, histories, states)


def test_a_running_run_without_history_or_unknown_is_kept():
    config = parse_config(_raw({"min_iter": 1}))
    assert to_stop(config, {"a": [1.0], "b": [2.0]}, {"c", "d"}) == set()
    assert to_stop(config, {}, {"c"}) == set()


def test_no_early_terminate_stops_nothing():
    config = parse_config({"method": "random", "parameters": {"a": {"values": [1]}}})
    assert to_stop(config, {"a": [1.0], "b": [9.0]}, {"b"}) == set()


def test_bands_from_max_iter_and_s_and_from_min_iter():
    assert bands(_et(_raw({"max_iter": 27, "s": 2, "eta": 3}))) == [3, 9]
    got = bands(_et(_raw({"min_iter": 1, "eta": 1.5})))
    assert len(got) == 100 and got[:6] == [1, 1, 2, 3, 5, 7]


@pytest.mark.parametrize(
    "early_terminate", [{"min_iter": 1, "eta": 2000}, {"min_iter": 10**400}, {"min_iter": 3**80}]
)
def test_bands_too_large_for_a_float_decide_as_wandb_does(early_terminate):
    raw = _raw(early_terminate)
    histories = {"a": [1.0, 0.5], "b": [3.0, 2.0], "c": [0.1, 0.1]}
    states = {"a": "finished", "b": _RUNNING, "c": "finished"}
    assert _ours(raw, histories, states) == _wandb_stops(raw, histories, states)


def test_a_max_iter_too_large_for_a_float_is_a_problem_not_a_crash():
    with pytest.raises(ConfigError) as info:
        parse_config(_raw({"max_iter": 10**400, "s": 2}))
    assert "early_terminate.max_iter" in str(info.value) and "too large" in str(info.value)


def test_early_terminate_without_a_metric_is_a_config_error():
    config = SweepConfig(
        raw={}, method="grid", parameters=(), early_terminate=EarlyTerminate(min_iter=1)
    )
    with pytest.raises(ConfigError, match="metric"):
        to_stop(config, {"a": [1.0]}, {"a"})


_VALUES = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, -1.0]),  # ties are where rules differ
    st.floats(-10, 10, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)
_OPTIONAL = {"eta": st.sampled_from([1.1, 1.5, 2, 2.5, 3, 4]), "strict": st.booleans()}
_ET = st.one_of(
    st.fixed_dictionaries({"min_iter": st.integers(1, 5)}, optional=_OPTIONAL),
    st.fixed_dictionaries(
        {"max_iter": st.integers(1, 40), "s": st.integers(1, 5)}, optional=_OPTIONAL
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    et=_ET,
    goal=st.sampled_from(["minimize", "maximize"]),
    runs=st.lists(
        st.tuples(
            st.sampled_from([_RUNNING, _RUNNING, "finished", "failed", "killed"]),
            st.lists(_VALUES, max_size=30),
        ),
        max_size=12,
    ),
)
def test_decisions_match_wandbs_engine_on_random_histories(et, goal, runs):
    raw = _raw(et, goal)
    if "max_iter" in et:
        assume(et["max_iter"] / et.get("eta", 3) >= 1)  # the config refuses bandless settings
    histories = {f"r{i}": h for i, (_, h) in enumerate(runs)}
    states = {f"r{i}": s for i, (s, _) in enumerate(runs)}
    assert _ours(raw, histories, states) == _wandb_stops(raw, histories, states)
