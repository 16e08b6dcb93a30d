"""The whole sweep config: every top-level key W&B allows, checked together.

What sweepherd does with each top-level key W&B's schema allows:

* ``method`` (grid, random, bayes), ``parameters``, ``metric``, ``early_terminate``,
  ``command``, ``program``, ``run_cap``, ``name``, ``description``, ``project``, ``entity``:
  used.
* ``apiVersion``, ``kind``, ``controller``, ``job``, ``image_uri``, and ``scheduler: {engine:
  wandb}``: checked as W&B checks them, kept in :attr:`SweepConfig.extra`, otherwise ignored
  (sweepherd is its own controller and runs ``program``/``command``, not Launch jobs).
* ``method: custom``, multi-objective ``metrics``, and ``scheduler`` with another engine or
  custom code: W&B accepts them, sweepherd cannot run them; each is a problem worded
  "not supported by sweepherd", counted apart from the invalid ones.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sweepherd.config._model import Metric, SweepConfig
from sweepherd.config._parameters import bayes_problems, grid_problems, parse_parameters
from sweepherd.config._problems import UNSUPPORTED, Problem, child, described, kind, show, suggest
from sweepherd.config._sections import (
    check_controller,
    check_scheduler,
    parse_command,
    parse_early_terminate,
    parse_metric,
    parse_run_cap,
    parse_string,
)
from sweepherd.errors import ConfigError

#: The search methods sweepherd runs.
METHODS = ("grid", "random", "bayes")

_METHOD_ALIASES = {
    "bayesian": "bayes",
    "bayes_opt": "bayes",
    "gp": "bayes",
    "random_search": "random",
    "grid_search": "grid",
}
_KEY_ALIASES = {
    "count": "run_cap",
    "max_runs": "run_cap",
    "early_stopping": "early_terminate",
    "early_termination": "early_terminate",
    "params": "parameters",
    "hyperparameters": "parameters",
    "algorithm": "method",
    "search": "method",
    "script": "program",
    "objective": "metric",
}

Section = Callable[[object, Mapping[str, Any], list[Problem]], object]


def _method(value: object, raw: Mapping[str, Any], problems: list[Problem]) -> str | None:
    if isinstance(value, str) and value in METHODS:
        return value
    if value == "custom":
        problems.append(
            Problem(
                "method",
                f"'custom' is {UNSUPPORTED} (W&B runs it only through an Optuna or Ax scheduler)",
                "use grid, random or bayes",
                unsupported=True,
            )
        )
    else:
        problems.append(
            Problem(
                "method",
                f"{show(value)} is not a search method",
                "use grid, random or bayes" + suggest(value, METHODS, _METHOD_ALIASES),
            )
        )
    return None


def _metrics(value: object, raw: Mapping[str, Any], problems: list[Problem]) -> None:
    problems.append(
        Problem(
            "metrics",
            f"multi-objective optimisation is {UNSUPPORTED}",
            "optimise one metric: metric: {name: val_loss, goal: minimize}",
            unsupported=True,
        )
    )


def _kind(value: object, raw: Mapping[str, Any], problems: list[Problem]) -> None:
    if value != "sweep":
        problems.append(Problem("kind", f"{show(value)} is not allowed", "use kind: sweep"))


def _string(key: str) -> Section:
    return lambda value, raw, problems: parse_string(value, key, problems)


#: Every top-level key W&B's schema allows -> its check, which returns the parsed value.
SECTIONS: dict[str, Section] = {
    "program": _string("program"),
    "method": _method,
    "metric": lambda value, raw, problems: parse_metric(value, problems),
    "parameters": lambda value, raw, problems: parse_parameters(value, "parameters", (), problems),
    "early_terminate": lambda value, raw, problems: parse_early_terminate(value, problems),
    "command": lambda value, raw, problems: parse_command(value, problems),
    "run_cap": lambda value, raw, problems: parse_run_cap(value, problems),
    "name": _string("name"),
    "description": _string("description"),
    "project": _string("project"),
    "entity": _string("entity"),
    "apiVersion": _string("apiVersion"),
    "kind": _kind,
    "controller": lambda value, raw, problems: check_controller(value, problems),
    "job": _string("job"),
    "image_uri": _string("image_uri"),
    "scheduler": lambda value, raw, problems: check_scheduler(value, raw.get("method"), problems),
    "metrics": _metrics,
}

#: Keys W&B allows that sweepherd keeps in ``SweepConfig.extra`` and otherwise ignores.
EXTRA_KEYS = ("apiVersion", "kind", "controller", "job", "image_uri", "scheduler")


def check(raw: object) -> tuple[SweepConfig | None, list[Problem]]:
    """Check a whole config; the :class:`SweepConfig` is None whenever a problem was found."""
    if raw is None:
        return None, [Problem("", "the sweep config is empty", "it needs method: and parameters:")]
    if not isinstance(raw, Mapping):
        return None, [
            Problem(
                "",
                f"the sweep config is {kind(raw)}, not a mapping",
                "write keys such as method: and parameters: at the top level",
            )
        ]
    problems: list[Problem] = []
    parsed: dict[str, Any] = {}
    n_param_problems = 0
    for key, value in raw.items():
        if key in SECTIONS:
            n_before = len(problems)
            parsed[key] = SECTIONS[key](value, raw, problems)
            if key == "parameters":
                n_param_problems = len(problems) - n_before
        elif not isinstance(key, str):
            problems.append(Problem(str(key), f"key {described(key)}", "keys are strings"))
        else:
            problems.append(
                Problem(
                    key,
                    "is not a sweep config key",
                    f"a sweep config takes {', '.join(sorted(SECTIONS, key=str.lower))}"
                    + suggest(key, SECTIONS, _KEY_ALIASES),
                )
            )
    problems += _across_keys(raw, parsed, n_param_problems)
    if problems:
        return None, problems
    return _build(raw, parsed), []


def _across_keys(
    raw: Mapping[str, Any], parsed: Mapping[str, Any], n_param_problems: int
) -> list[Problem]:
    """Rules that involve more than one key."""
    problems: list[Problem] = []
    method = raw.get("method")
    scheduler = raw.get("scheduler")
    if "method" not in raw:
        problems.append(Problem("method", "missing", "use grid, random or bayes"))
    custom_space = isinstance(scheduler, Mapping) and "search_space" in scheduler
    if "parameters" not in raw and not custom_space:
        problems.append(
            Problem(
                "parameters",
                "missing",
                "describe the search space, e.g. parameters: {lr: {min: 0.0001, max: 0.1}}",
            )
        )
    needs_metric = []
    if method == "bayes":
        needs_metric.append("method: bayes models it")
    if "early_terminate" in raw:
        needs_metric.append("early_terminate compares runs by it")
    if needs_metric and "metric" not in raw and "metrics" not in raw:
        problems.append(
            Problem(
                "metric",
                f"missing; {' and '.join(needs_metric)}",
                "add metric: {name: <what your program logs>, goal: minimize or maximize}",
            )
        )
    params = parsed.get("parameters")
    if params and method == "grid":
        problems += grid_problems(params)  # those that parsed; the others have problems already
    if params and method == "bayes":
        problems += bayes_problems(params)
    all_constant = params and all(p.distribution == "constant" for p in params)
    if method == "bayes" and all_constant and n_param_problems == 0:
        problems.append(
            Problem(
                "parameters",
                "method: bayes needs at least one parameter that varies (all are constants)",
                "give one values: or min: and max:, or use method: random",
            )
        )
    if scheduler is not None and "early_terminate" in raw:
        problems.append(
            Problem(
                "scheduler",
                "cannot be combined with early_terminate (W&B's rule)",
                "remove one of them",
            )
        )
    controller = raw.get("controller")
    if (
        scheduler is not None
        and isinstance(controller, Mapping)
        and controller.get("type") == "local"
    ):
        problems.append(
            Problem(
                child("controller", "type"),
                "local cannot be combined with scheduler (W&B's rule)",
                "remove controller:",
            )
        )
    return problems


def _build(raw: Mapping[str, Any], parsed: Mapping[str, Any]) -> SweepConfig:
    metric: Metric | None = parsed.get("metric")
    return SweepConfig(
        raw=copy.deepcopy(dict(raw)),
        method=parsed["method"],
        parameters=tuple(parsed["parameters"]),
        metric=metric,
        early_terminate=parsed.get("early_terminate"),
        program=parsed.get("program"),
        command=parsed.get("command"),
        run_cap=parsed.get("run_cap"),
        name=parsed.get("name"),
        description=parsed.get("description"),
        project=parsed.get("project"),
        entity=parsed.get("entity"),
        extra={k: copy.deepcopy(raw[k]) for k in EXTRA_KEYS if k in raw},
    )


def header(source: str | None, problems: list[Problem]) -> str:
    """The first line of the error: how many problems, and how many are unsupported features.

    ``source`` names the file; None for a mapping given directly.
    """
    n = len(problems)
    n_unsupported = sum(p.unsupported for p in problems)
    subject = "the sweep config" if source is None else source
    if n_unsupported == n:
        return f"{subject} uses W&B features that sweepherd does not support:"
    counted = f"{n} problem{'s' if n > 1 else ''}"
    if n_unsupported:
        counted += f", {n_unsupported} of them W&B features sweepherd does not support"
    if source is None:
        return f"the sweep config is not valid ({counted}):"
    return f"{source} is not a valid sweep config ({counted}):"


def build_config(
    raw: object, source: str | None, text: str | None = None, problems: Sequence[Problem] = ()
) -> SweepConfig:
    """:func:`check`, raising :class:`ConfigError` with every problem when there is any.

    ``problems`` were found before (while reading the file) and are reported first.
    """
    config, found = check(raw)
    every = [*problems, *found]
    if config is None or every:
        raise ConfigError(header(source, every), violations=[str(p) for p in every])
    return config if text is None else dataclasses.replace(config, text=text)


def parse_config(raw: Mapping[str, Any]) -> SweepConfig:
    """Check a sweep config given as a mapping and return its normalised form.

    Raises :class:`~sweepherd.errors.ConfigError` whose ``violations`` list **every** problem,
    each as ``<key path>: <what is wrong>; <what is allowed>``.
    """
    return build_config(raw, None)


def violations(raw: Mapping[str, Any]) -> list[str]:
    """Every problem of a sweep config, as messages; ``[]`` when it is valid."""
    return [str(p) for p in check(raw)[1]]


def run_problems(config: SweepConfig) -> list[str]:
    """What stops sweepherd from *running* a config that W&B accepts, as messages.

    W&B accepts a config without ``program`` (``wandb.agent(function=...)`` needs none), but
    sweepherd always runs a command, and the default one is ``${env} ${interpreter} ${program}
    ${args}``. ``sweepherd validate``, ``run`` and ``submit`` report these as errors.
    """
    if config.program:
        return []
    state = "missing" if config.program is None else "empty"
    if config.command is None:
        default = "${env} ${interpreter} ${program} ${args}"
        needs = f"{state}; the default command ({default}) needs it"
        how = "add program: train.py, or a command: that names your script"
    elif "${program}" in config.command:
        needs, how = (
            f"{state}; command uses ${{program}}",
            "add program: train.py, or name the script in command:",
        )
    else:
        return []
    return [str(Problem("program", needs, how))]
