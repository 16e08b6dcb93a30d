"""parse_config: the normalised SweepConfig — inference and defaults as W&B's engine fills them."""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest

from sweepherd.config import (
    EarlyTerminate,
    Metric,
    Param,
    flatten,
    nest,
    parse_config,
    run_problems,
    violations,
)
from sweepherd.errors import ConfigError, ExitStatus

#: W&B's internal parameter type -> sweepherd's distribution name.
WANDB_TYPES = {
    "param_single_value": "constant",
    "param_categorical": "categorical",
    "param_categorical_w_probabilities": "categorical",
    "param_int_uniform": "int_uniform",
    "param_uniform": "uniform",
    "param_quniform": "q_uniform",
    "param_loguniform_v2": "log_uniform_values",
    "param_qloguniform_v2": "q_log_uniform_values",
    "param_inv_loguniform_v2": "inv_log_uniform_values",
    "param_normal": "normal",
    "param_qnormal": "q_normal",
    "param_lognormal": "log_normal",
    "param_qlognormal": "q_log_normal",
    "param_beta": "beta",
    "param_qbeta": "q_beta",
}


def _wandb_params(config: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """W&B's own reading of the parameters: path -> HyperParameter (type and filled config)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sweeps.params import HyperParameterSet

        found = HyperParameterSet.from_config(copy.deepcopy(config["parameters"]))
    return {tuple(p.name.split(HyperParameterSet.NESTING_DELIMITER)): p for p in found}


def test_distribution_and_defaults_match_wandbs_for_every_valid_corpus_case(
    valid_corpus_case: dict[str, Any],
) -> None:
    config = valid_corpus_case["config"]
    ours = {p.path: p for p in parse_config(config).parameters}
    theirs = _wandb_params(config)
    assert set(ours) == set(theirs)
    for path, param in ours.items():
        wandb = theirs[path]
        assert param.distribution == WANDB_TYPES[wandb.type], path
        for key, value in wandb.config.items():
            if key == "distribution":
                continue
            ours_value = getattr(param, key)
            ours_value = list(ours_value) if isinstance(ours_value, tuple) else ours_value
            assert ours_value == value, (path, key)
            assert type(ours_value) is type(value) or key in ("mu", "sigma", "a", "b"), (path, key)


def test_inference_when_distribution_is_omitted() -> None:
    config = parse_config(
        {
            "method": "random",
            "parameters": {
                "const": {"value": 3},
                "cat": {"values": ["a", "b"]},
                "weighted": {"values": ["a", "b"], "probabilities": [0.25, 0.75]},
                "ints": {"min": 1, "max": 8},
                "mixed": {"min": 0, "max": 1.0},
            },
        }
    )
    got = {p.name: p.distribution for p in config.parameters}
    assert got == {
        "const": "constant",
        "cat": "categorical",
        "weighted": "categorical",
        "ints": "int_uniform",
        "mixed": "uniform",
    }
    assert config.param("weighted").probabilities == (0.25, 0.75)
    assert config.param("cat").probabilities is None


def test_defaults_are_filled_in() -> None:
    config = parse_config(
        {
            "method": "random",
            "metric": {"name": "loss"},
            "early_terminate": {"type": "hyperband", "min_iter": 2},
            "parameters": {
                "q": {"distribution": "q_uniform", "min": 0, "max": 10},
                "n": {"distribution": "q_normal"},
                "b": {"distribution": "beta"},
            },
        }
    )
    q = config.param("q")
    assert q.q == 1.0 and isinstance(q.q, float)  # W&B's default, so q_uniform yields floats
    assert (config.param("n").mu, config.param("n").sigma, config.param("n").q) == (0, 1, 1.0)
    assert (config.param("b").a, config.param("b").b) == (1, 1)
    assert config.metric == Metric(name="loss", goal="minimize", impute="worst")
    assert config.metric.impute_while_running is None
    assert config.early_terminate == EarlyTerminate(min_iter=2, eta=3, strict=True)


def test_numbers_keep_the_type_the_user_wrote() -> None:
    config = parse_config(
        {
            "method": "random",
            "parameters": {
                "a": {"min": 1, "max": 5.0},
                "b": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 2},
            },
        }
    )
    assert type(config.param("a").min) is int and type(config.param("a").max) is float
    assert type(config.param("b").q) is int


def test_nested_parameters_become_paths_in_written_order() -> None:
    raw = {
        "method": "random",
        "parameters": {
            "z": {"value": 1},
            "opt": {
                "parameters": {
                    "name": {"values": ["adam", "sgd"]},
                    "inner": {"parameters": {"beta": {"min": 0.5, "max": 0.99}}},
                }
            },
            "a": {"value": 2},
        },
    }
    config = parse_config(raw)
    assert [p.path for p in config.parameters] == [
        ("z",),
        ("opt", "name"),
        ("opt", "inner", "beta"),
        ("a",),
    ]
    assert config.param("opt.inner.beta").distribution == "uniform"
    values = {("z",): 1, ("opt", "name"): "sgd", ("opt", "inner", "beta"): 0.7, ("a",): 2}
    nested = nest(values)
    assert nested == {"z": 1, "opt": {"name": "sgd", "inner": {"beta": 0.7}}, "a": 2}
    assert flatten(nested, config.parameters) == values


def test_top_level_values_are_kept() -> None:
    raw = {
        "program": "train.py",
        "method": "grid",
        "name": "n",
        "description": "d",
        "project": "p",
        "entity": "e",
        "run_cap": 4.0,
        "command": ["${env}", "python", "train.py", 3, 0.5, "${args}"],
        "apiVersion": "v1",
        "kind": "sweep",
        "controller": {"type": "cloud"},
        "job": "j",
        "metric": {
            "name": "acc",
            "goal": "maximize",
            "target": 0.9,
            "impute_while_running": "best",
        },
        "early_terminate": {"type": "hyperband", "max_iter": 27.0, "s": 2, "eta": 3},
        "parameters": {"x": {"values": [1, 2]}},
    }
    config = parse_config(raw)
    assert (config.program, config.method, config.name, config.description) == (
        "train.py",
        "grid",
        "n",
        "d",
    )
    assert (config.project, config.entity) == ("p", "e")
    assert config.run_cap == 4 and type(config.run_cap) is int
    assert config.command == ("${env}", "python", "train.py", "3", "0.5", "${args}")
    assert config.metric == Metric("acc", "maximize", 0.9, "worst", "best")
    assert config.early_terminate == EarlyTerminate(max_iter=27, s=2, eta=3)
    assert type(config.early_terminate.max_iter) is int
    assert config.extra == {
        "apiVersion": "v1",
        "kind": "sweep",
        "controller": {"type": "cloud"},
        "job": "j",
    }


def test_raw_is_a_verbatim_copy() -> None:
    raw = {"method": "random", "parameters": {"x": {"min": 0, "max": 1.0}}, "run_cap": 3.0}
    config = parse_config(raw)
    assert config.raw == raw
    raw["parameters"]["x"]["max"] = 99  # the caller's later changes do not reach the config
    assert config.raw["parameters"]["x"]["max"] == 1.0
    assert config.raw["run_cap"] == 3.0  # not normalised


def test_parse_config_raises_every_violation_with_the_config_exit_status() -> None:
    raw = {"method": "grid", "parameters": {"x": {"min": 0, "max": 1.0}, "y": {"values": []}}}
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert caught.value.exit_status == ExitStatus.CONFIG
    assert caught.value.violations == violations(raw)
    assert len(caught.value.violations) == 2
    assert str(caught.value).startswith("the sweep config is not valid (2 problems):\n  - ")


def test_param_lookup_by_dotted_name() -> None:
    config = parse_config(
        {"method": "random", "parameters": {"o": {"parameters": {"p": {"value": 1}}}}}
    )
    assert config.param("o.p") == Param(path=("o", "p"), distribution="constant", value=1)
    with pytest.raises(KeyError):
        config.param("p")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"program": "train.py"}, []),
        ({"command": ["python", "train.py", "${args}"]}, []),
        ({}, ["program: missing; the default command"]),
        ({"command": ["${env}", "python", "${program}"]}, ["program: missing; command uses"]),
        ({"program": ""}, ["program: empty; the default command"]),
        ({"program": "", "command": []}, ["program: empty; the default command"]),
        ({"program": "", "command": ["python", "train.py"]}, []),
    ],
)
def test_run_problems_needs_a_program_only_when_the_command_does(
    extra: dict[str, Any], expected: list[str]
) -> None:
    config = parse_config({"method": "random", "parameters": {"x": {"value": 1}}, **extra})
    found = run_problems(config)
    assert len(found) == len(expected)
    for message, start in zip(found, expected, strict=True):
        assert message.startswith(start)
