"""The wording of violations: key path first, every problem together, what is allowed, hints."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from sweepherd.config import parse_config, violations
from sweepherd.errors import ConfigError

MESSAGE = re.compile(r"^(\(top level\)|[^:\s][^:]*): \S")


def test_every_message_of_every_invalid_corpus_case_starts_with_its_key_path(
    corpus_case: dict[str, Any],
) -> None:
    for message in violations(corpus_case["config"]):
        assert MESSAGE.match(message), message
        assert "\n" not in message


def test_all_problems_of_a_config_come_together_in_document_order() -> None:
    raw = {
        "method": "grid",
        "metric": {"name": "loss", "goal": "lowest"},
        "parameters": {
            "lr": {"distribution": "loguniform", "min": 0.0001, "max": 0.1},
            "opt": {"parameters": {"momentum": {"min": 5, "max": 1}, "nesterov": {"value": True}}},
            "wd": {"min": 0.0, "max": 0.1},
        },
        "run_cap": -1,
        "early_terminate": {"type": "hyperband", "min_iter": 0},
        "command": ["python", "train.py", "${arg}"],
    }
    assert violations(raw) == [
        "metric.goal: 'lowest' is not allowed; use minimize or maximize",
        "parameters.lr.distribution: 'loguniform' is not a distribution; use one of constant,"
        " categorical, int_uniform, uniform, q_uniform, log_uniform_values, q_log_uniform_values,"
        " inv_log_uniform_values, normal, q_normal, log_normal, q_log_normal, beta, q_beta"
        " (did you mean log_uniform_values?)",
        "parameters.opt.parameters.momentum.min: must be less than max (min=5, max=1)",
        "run_cap: -1 is not allowed; use a whole number greater than 0",
        "early_terminate.min_iter: 0 is not allowed; use an integer >= 1",
        "command[2]: '${arg}' is not a macro wandb agent knows (it would expand to nothing); use"
        " ${env}, ${interpreter}, ${program}, ${args}, ${args_no_hyphens},"
        " ${args_no_boolean_flags}, ${args_no_equals}, ${args_json}, ${args_json_file},"
        " ${args_dict}, ${args_append_hydra}, ${args_override_hydra} or ${envvar:NAME}"
        " (did you mean ${args}?)",
        "parameters.wd: a uniform parameter cannot be enumerated by method: grid; grid takes"
        " constant, categorical, int_uniform or q_uniform: list the points with values: [...],"
        " or use method: random or bayes",
    ]


@pytest.mark.parametrize(
    ("spec", "replacement", "limits"),
    [
        ({"min": -5, "max": 0}, "log_uniform_values", (math.exp(-5), 1.0)),
        ({"min": 0, "max": 3, "q": 2}, "q_log_uniform_values", (1.0, math.exp(3))),
        ({"min": 1, "max": 3}, "inv_log_uniform_values", (math.exp(-3), math.exp(-1))),
    ],
)
def test_deprecated_forms_name_the_replacement_and_the_converted_limits(
    spec: dict[str, Any], replacement: str, limits: tuple[float, float]
) -> None:
    deprecated = replacement.removesuffix("_values")
    raw = {"method": "random", "parameters": {"x": {"distribution": deprecated, **spec}}}
    (message,) = violations(raw)
    assert message.startswith(f"parameters.x.distribution: '{deprecated}' is deprecated")
    assert "base-e exponents" in message
    assert f"use distribution: {replacement}" in message
    assert f"min: {limits[0]:.6g}, max: {limits[1]:.6g}" in message
    if "q" in spec:
        assert "the same q" in message


def test_the_converted_limits_sample_what_wandbs_deprecated_form_sampled() -> None:
    """The conversion the message gives is right: W&B's engine samples the same values."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sweeps.params import HyperParameter
    for old, new, low, high in [
        ("log_uniform", "log_uniform_values", math.exp(-5), math.exp(0)),
        ("inv_log_uniform", "inv_log_uniform_values", math.exp(-3), math.exp(-1)),
    ]:
        spec = {"min": -5, "max": 0} if old == "log_uniform" else {"min": 1, "max": 3}
        before = HyperParameter("x", {"distribution": old, **spec})
        after = HyperParameter("x", {"distribution": new, "min": low, "max": high})
        for u in (0.1, 0.5, 0.9):
            assert math.isclose(float(before.ppf(u)), float(after.ppf(u)))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"method": "random", "paramters": {}}, "(did you mean parameters?)"),
        ({"method": "random", "early_stopping": {}}, "(did you mean early_terminate?)"),
        ({"method": "grid_search"}, "(did you mean grid?)"),
        (
            {"method": "random", "metric": {"name": "l", "goal": "maximise"}},
            "(did you mean maximize?)",
        ),
        ({"method": "random", "metric": {"nmae": "l"}}, "(did you mean name?)"),
        (
            {"method": "random", "parameters": {"x": {"distribution": "randint"}}},
            "(did you mean int_uniform?)",
        ),
        (
            {"method": "random", "parameters": {"x": {"distribution": "log_normall"}}},
            "(did you mean log_normal?)",
        ),
        (
            {"method": "random", "parameters": {"x": {"values": [1], "probability": [1]}}},
            "(did you mean probabilities?)",
        ),
        (
            {"method": "random", "early_terminate": {"type": "hyperband", "miniter": 2}},
            "(did you mean min_iter?)",
        ),
    ],
)
def test_close_misspellings_get_a_suggestion(raw: dict[str, Any], expected: str) -> None:
    assert any(expected in m for m in violations(raw)), violations(raw)


@pytest.mark.parametrize("form", ["log_normal", "q_log_normal"])
def test_a_log_normal_whose_values_pass_the_largest_float_says_mu_is_a_log(form: str) -> None:
    """``mu: 800`` read as "about 800" validated, then every draw overflowed in the agent."""
    raw = {"method": "random", "parameters": {"x": {"distribution": form, "mu": 800}}}
    (message,) = violations(raw)
    assert message.startswith("parameters.x.mu: gives values up to e^807, beyond the largest")
    assert "mu: 6.9" in message
    sigma = {"distribution": form, "mu": 0, "sigma": 101}  # 7.04 x 101 > 709: too wide
    assert len(violations({"method": "random", "parameters": {"x": sigma}})) == 1
    ok = {"distribution": form, "mu": 600, "sigma": 15}  # e^705.6 at the sampler's widest
    assert violations({"method": "random", "parameters": {"x": ok}}) == []


def test_the_log_normal_limit_covers_the_samplers_widest_draw() -> None:
    from sweepherd.config._parameters import _Z_MAX
    from sweepherd.search._sampling import U_MAX, U_MIN, _z

    assert _z(U_MAX) <= _Z_MAX and _z(U_MIN) >= -_Z_MAX
    assert _z(1.0) == _z(U_MAX)


@pytest.mark.parametrize(
    ("spec", "n"),
    [
        ({"min": 0, "max": 2**63 - 1}, f"{2**63:,}"),
        ({"distribution": "q_uniform", "min": 0, "max": 1000, "q": 0.001}, "1,000,000"),
    ],
)
def test_a_grid_parameter_too_long_to_list_is_refused_with_its_count(
    spec: dict[str, Any], n: str
) -> None:
    """Every claim lists each grid parameter's values: 2**63 of them crashed the agent."""
    (message,) = violations({"method": "grid", "parameters": {"x": spec}})
    assert message.startswith(f"parameters.x: method: grid would run every one of its {n} values")
    assert violations({"method": "random", "parameters": {"x": spec}}) == []
    fits = {"min": 1, "max": 100_000}
    assert violations({"method": "grid", "parameters": {"x": fits}}) == []


def test_a_number_yaml_reads_as_text_gets_a_yaml_hint() -> None:
    (message,) = violations({"method": "random", "parameters": {"x": {"min": "1e-5", "max": 0.1}}})
    assert message.startswith("parameters.x.min: '1e-5' is a string, not a number")
    assert "1.0e-5" in message


def test_a_bare_yaml_false_for_impute_while_running_says_to_quote_it() -> None:
    raw = {"method": "random", "metric": {"name": "l", "impute_while_running": False}}
    message = next(m for m in violations(raw) if m.startswith("metric.impute_while_running"))
    assert "'false' in quotes" in message


def test_a_scalar_parameter_is_shown_how_to_write_it_as_a_constant() -> None:
    (message,) = violations({"method": "random", "parameters": {"lr": 0.1}})
    assert message.startswith("parameters.lr: 0.1 is a number, not a parameter spec")
    assert "{value: 0.1}" in message


@pytest.mark.parametrize(
    ("raw", "start"),
    [
        (
            {"method": "random", "parameters": {"x": {"value": 1}}, "run_cap": 0},
            "the sweep config is not valid (1 problem):",
        ),
        (
            {"method": "custom", "parameters": {"x": {"value": 1}}},
            "the sweep config uses W&B features that sweepherd does not support:",
        ),
        (
            {"method": "custom", "parameters": {"x": {"value": 1}}, "run_cap": 0},
            "the sweep config is not valid (2 problems, 1 of them W&B features sweepherd does"
            " not support):",
        ),
    ],
)
def test_the_error_header_counts_invalid_and_unsupported_apart(
    raw: dict[str, Any], start: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert str(caught.value).splitlines()[0] == start
    assert str(caught.value).splitlines()[1:] == [f"  - {v}" for v in violations(raw)]


def test_unsupported_features_say_so_and_what_to_use_instead() -> None:
    raw = {
        "method": "custom",
        "scheduler": {"engine": "optuna", "source": "s.py"},
        "metrics": [{"name": "a"}, {"name": "b"}],
        "parameters": {"x": {"value": 1}},
    }
    found = violations(raw)
    assert [m.split(":")[0] for m in found] == [
        "method",
        "scheduler.engine",
        "scheduler.source",
        "metrics",
    ]
    for message in found:
        assert "not supported by sweepherd" in message
    assert "use grid, random or bayes" in found[0]
    assert "metric: {name: val_loss, goal: minimize}" in found[3]


def test_a_quoted_number_is_told_to_lose_its_quotes() -> None:
    raw = {
        "method": "random",
        "metric": {"name": "l", "target": "0.1"},
        "parameters": {"x": {"value": 1}},
    }
    (message,) = violations(raw)
    assert message == "metric.target: '0.1' is a string, not a number (remove the quotes)"
