"""sweepherd accepts a sweep config exactly when W&B's engine does (corpus and random specs).

The corpus is ``tests/config/corpus/*.yaml``. Where sweepherd refuses a config that W&B's engine
accepts, the case says why (``differs``); the test checks that W&B really does accept it, so a
difference cannot hide a disagreement.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings

from sweepherd.config import parse_config, violations
from sweepherd.errors import ConfigError

UNSUPPORTED = "not supported by sweepherd"


def _paths(messages: list[str]) -> list[str]:
    return [m.split(": ", 1)[0] for m in messages]


def test_corpus_case_agrees_with_wandb(
    corpus_case: dict[str, Any], wandb_verdict: Callable[[Any], list[str]]
) -> None:
    config = corpus_case["config"]
    ours = violations(config)
    theirs = wandb_verdict(config)
    if "differs" in corpus_case:
        assert theirs == [], f"W&B rejects it too now, drop 'differs': {theirs}"
        assert ours, "sweepherd accepts a config it is documented to refuse"
    else:
        assert (ours == []) == (theirs == []), f"sweepherd: {ours}\nW&B: {theirs}"


def test_corpus_case_reports_exactly_the_expected_key_paths(corpus_case: dict[str, Any]) -> None:
    ours = violations(corpus_case["config"])
    assert sorted(_paths(ours)) == sorted(corpus_case["paths"]), "\n".join(ours)


def test_corpus_case_marks_unsupported_features(corpus_case: dict[str, Any]) -> None:
    ours = violations(corpus_case["config"])
    if corpus_case.get("unsupported"):
        assert ours and all(UNSUPPORTED in m for m in ours), ours
    else:
        assert not any(UNSUPPORTED in m for m in ours), ours


def test_corpus_case_parses_iff_it_has_no_violations(corpus_case: dict[str, Any]) -> None:
    config = corpus_case["config"]
    expected = violations(config)
    if expected:
        with pytest.raises(ConfigError) as caught:
            parse_config(config)
        assert caught.value.violations == expected
    else:
        assert parse_config(config).raw == config


def test_corpus_is_big_and_covers_both_verdicts() -> None:
    cases = [
        case
        for path in sorted((Path(__file__).parent / "corpus").glob("*.yaml"))
        for case in yaml.safe_load_all(path.read_text())
    ]
    valid = [c for c in cases if not c["paths"]]
    invalid = [c for c in cases if c["paths"]]
    assert len(valid) >= 30 and len(invalid) >= 80
    assert len({c["id"] for c in cases}) == len(cases), "case ids must be unique"


# --- random parameter specs --------------------------------------------------------------------

_NUMBERS = st.sampled_from([-2, -1, 0, 1, 3, 10, -1.5, 0.0, 0.25, 1.0, 2.5, 1e-4])
_ODD = st.sampled_from(["1e-5", "a", True, None, [1, 2], {"a": 1}])
_DISTRIBUTIONS = st.sampled_from(
    [
        "constant",
        "categorical",
        "categorical_w_probabilities",
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
        "log_uniform",
        "q_log_uniform",
        "inv_log_uniform",
        "loguniform",
    ]
)


@st.composite
def _spec(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    """A parameter spec that is sometimes valid, often subtly not."""
    if depth < 2 and draw(st.integers(0, 9)) == 0:
        names = draw(st.lists(st.sampled_from(["a", "b", "c_d", "e.f"]), min_size=1, max_size=3))
        return {"parameters": {n: draw(_spec(depth + 1)) for n in names}}
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["distribution"] = draw(_DISTRIBUTIONS)
    keys = draw(
        st.lists(
            st.sampled_from(
                [
                    "value",
                    "values",
                    "probabilities",
                    "min",
                    "max",
                    "q",
                    "mu",
                    "sigma",
                    "a",
                    "b",
                    "other",
                ]
            ),
            max_size=4,
            unique=True,
        )
    )
    for key in keys:
        if key == "values":
            spec[key] = draw(st.lists(st.sampled_from([1, 2, "x", None, 0.5]), max_size=3))
        elif key == "probabilities":
            spec[key] = draw(st.lists(st.sampled_from([0.5, 0.25, 1.0, 0, -0.5]), max_size=3))
        elif key == "value":
            spec[key] = draw(st.one_of(_NUMBERS, _ODD))
        else:
            spec[key] = draw(st.one_of(_NUMBERS, _NUMBERS, _ODD))
    return spec


def _samples_nan_in_wandb(spec: dict[str, Any]) -> bool:
    """Specs on which W&B accepts and samples NaN, which sweepherd refuses on purpose."""
    if "parameters" in spec:
        return any(_samples_nan_in_wandb(s) for s in spec["parameters"].values())
    return any(spec.get(k) == 0 and not isinstance(spec.get(k), bool) for k in ("sigma", "a", "b"))


def _nested_only_checks(spec: dict[str, Any], depth: int = 0) -> bool:
    """Nested specs whose probabilities or deprecated form W&B checks only at the top level."""
    if "parameters" in spec:
        return any(_nested_only_checks(s, depth + 1) for s in spec["parameters"].values())
    deprecated = spec.get("distribution") in ("log_uniform", "q_log_uniform", "inv_log_uniform")
    return depth > 0 and ("probabilities" in spec or deprecated)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(spec=_spec(), method=st.sampled_from(["grid", "random", "bayes"]))
def test_random_parameter_specs_agree_with_wandb(
    spec: dict[str, Any], method: str, wandb_verdict: Callable[[Any], list[str]]
) -> None:
    assume(not _samples_nan_in_wandb(spec) and not _nested_only_checks(spec))
    config = {"method": method, "metric": {"name": "loss"}, "parameters": {"p": spec}}
    ours = violations(copy.deepcopy(config))
    theirs = wandb_verdict(config)
    assert (ours == []) == (theirs == []), f"sweepherd: {ours}\nW&B: {theirs}"
