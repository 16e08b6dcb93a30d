"""The top-level sections other than ``parameters:``: metric, early_terminate, command, ...

Each ``parse_*`` function checks one section as W&B's schema and engine do, appends every
problem it finds, and returns the parsed value (or None when the section has problems).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any, cast

from sweepherd.config._model import EarlyTerminate, Metric
from sweepherd.config._problems import (
    UNSUPPORTED,
    Problem,
    child,
    described,
    is_finite_number,
    is_number,
    is_whole,
    item,
    one_of,
    show,
    suggest,
    yaml_number_hint,
)

#: The ``${...}`` macros ``wandb agent`` expands in ``command:`` (besides ``${envvar:NAME}``).
#: Each is expanded only when it is a list item of its own.
COMMAND_MACROS: tuple[str, ...] = (
    "env",
    "interpreter",
    "program",
    "args",
    "args_no_hyphens",
    "args_no_boolean_flags",
    "args_no_equals",
    "args_json",
    "args_json_file",
    "args_dict",
    "args_append_hydra",
    "args_override_hydra",
)

_MACRO = re.compile(r"\$\{([^}]*)\}")
_ENVVAR = re.compile(r"envvar:[A-Z0-9_]*")  # wandb agent's own pattern

METRIC_KEYS = ("name", "goal", "target", "impute", "impute_while_running")
GOALS = ("minimize", "maximize")
IMPUTES = ("latest", "best", "worst")
_GOAL_ALIASES = {"min": "minimize", "max": "maximize", "minimum": "minimize", "maximum": "maximize"}

EARLY_TERMINATE_KEYS = ("type", "min_iter", "max_iter", "s", "eta", "strict")
SCHEDULER_KEYS = ("engine", "source", "optimizer", "search_space")
SCHEDULER_ENGINES = ("wandb", "optuna", "ax")


def _unknown_keys(
    raw: Mapping[Any, Any], path: str, allowed: tuple[str, ...], problems: list[Problem]
) -> None:
    for key in raw:
        if key not in allowed:
            problems.append(
                Problem(
                    child(path, key),
                    "is not a key of " + path,
                    f"{path} takes {', '.join(allowed)}" + suggest(key, allowed),
                )
            )


def _choice(
    value: object,
    path: str,
    choices: tuple[str, ...],
    problems: list[Problem],
    aliases: Mapping[str, str] | None = None,
) -> bool:
    if isinstance(value, str) and value in choices:
        return True
    problems.append(
        Problem(
            path,
            f"{show(value)} is not allowed",
            f"use {one_of(choices)}" + suggest(value, choices, aliases),
        )
    )
    return False


def parse_string(raw: object, path: str, problems: list[Problem]) -> str | None:
    """A key whose value must be a string (``program``, ``name``, ``project``...)."""
    if isinstance(raw, str):
        return raw
    problems.append(Problem(path, f"{described(raw)}", "it must be a string"))
    return None


def parse_metric(raw: object, problems: list[Problem]) -> Metric | None:
    """``metric: {name, goal, target, impute, impute_while_running}``."""
    n_before = len(problems)
    if not isinstance(raw, Mapping):
        example = raw if isinstance(raw, str) else "val_loss"
        problems.append(
            Problem(
                "metric",
                f"{described(raw)}, not a mapping",
                f"write metric: {{name: {example}, goal: minimize}}",
            )
        )
        return None
    _unknown_keys(raw, "metric", METRIC_KEYS, problems)
    name = raw.get("name")
    if "name" not in raw:
        problems.append(Problem("metric.name", "missing", "name the metric your program logs"))
    elif not isinstance(name, str) or not name:
        problems.append(
            Problem("metric.name", f"{show(name)} is not a metric name", "use a non-empty string")
        )
    if "goal" in raw:
        _choice(raw["goal"], "metric.goal", GOALS, problems, _GOAL_ALIASES)
    target = raw.get("target")
    if "target" in raw and not is_number(target):
        problems.append(
            Problem(
                "metric.target",
                f"{described(target)}, not a number" + yaml_number_hint(target),
            )
        )
    elif isinstance(target, int) and not is_finite_number(target):
        problems.append(Problem("metric.target", f"{show(target)} is too large for a float"))
    if "impute" in raw:
        _choice(raw["impute"], "metric.impute", IMPUTES, problems)
    while_running = raw.get("impute_while_running")
    if isinstance(while_running, bool):
        problems.append(
            Problem(
                "metric.impute_while_running",
                f"{show(while_running)} is a YAML boolean; W&B's schema wants a string",
                "use latest, best, worst, or 'false' in quotes",
            )
        )
    elif "impute_while_running" in raw:
        _choice(while_running, "metric.impute_while_running", (*IMPUTES, "false"), problems)
    if len(problems) > n_before:
        return None
    return Metric(
        name=cast(str, name),
        goal=raw.get("goal", "minimize"),
        target=target,
        impute=raw.get("impute", "worst"),
        impute_while_running=None if while_running in (None, "false") else while_running,
    )


def parse_early_terminate(raw: object, problems: list[Problem]) -> EarlyTerminate | None:
    """``early_terminate: {type: hyperband, min_iter | max_iter + s, eta, strict}``."""
    path = "early_terminate"
    n_before = len(problems)
    if not isinstance(raw, Mapping):
        problems.append(
            Problem(
                path,
                f"{described(raw)}, not a mapping",
                "write early_terminate: {type: hyperband, min_iter: 3}",
            )
        )
        return None
    _unknown_keys(raw, path, EARLY_TERMINATE_KEYS, problems)
    if "type" not in raw:
        problems.append(Problem(f"{path}.type", "missing", "use type: hyperband"))
    elif raw["type"] != "hyperband":
        problems.append(
            Problem(
                f"{path}.type",
                f"{show(raw['type'])} is not an early-termination type",
                "use hyperband" + suggest(raw["type"], ("hyperband",)),
            )
        )
    min_iter, max_iter, s = raw.get("min_iter"), raw.get("max_iter"), raw.get("s")
    eta, strict = raw.get("eta", 3), raw.get("strict", True)
    if "min_iter" in raw and not (is_whole(min_iter) and min_iter >= 1):
        problems.append(
            Problem(f"{path}.min_iter", f"{show(min_iter)} is not allowed", "use an integer >= 1")
        )
    if "max_iter" in raw and not is_whole(max_iter):
        problems.append(
            Problem(f"{path}.max_iter", f"{show(max_iter)} is not allowed", "use an integer")
        )
    if "s" in raw and not (isinstance(s, int) and not isinstance(s, bool) and s >= 1):
        problems.append(
            Problem(
                f"{path}.s",
                f"{show(s)} is not allowed",
                "use an integer >= 1 (the number of bands, counted back from max_iter)",
            )
        )
    if not (is_finite_number(eta) and eta > 1):
        problems.append(Problem(f"{path}.eta", f"{show(eta)} is not allowed", "use a number > 1"))
    if not isinstance(strict, bool):
        problems.append(
            Problem(f"{path}.strict", f"{show(strict)} is not allowed", "use true or false")
        )
    if "max_iter" in raw and "s" not in raw:
        # W&B's engine uses max_iter whenever it is given, and then needs s.
        problems.append(Problem(f"{path}.s", "missing; max_iter needs s", "e.g. s: 2"))
    elif "min_iter" not in raw and "max_iter" not in raw:
        if "s" in raw:
            problems.append(
                Problem(f"{path}.max_iter", "missing; s needs max_iter", "e.g. max_iter: 27")
            )
        else:
            problems.append(
                Problem(
                    path,
                    "needs min_iter, or max_iter and s",
                    "e.g. {type: hyperband, min_iter: 3} or {type: hyperband, max_iter: 27, s: 2}",
                )
            )
    if len(problems) > n_before:
        return None
    if max_iter is not None and abs(max_iter) > sys.float_info.max:
        problems.append(
            Problem(f"{path}.max_iter", f"{show(max_iter)} is too large", "use a smaller integer")
        )
        return None
    if max_iter is not None and max_iter / eta < 1:
        problems.append(
            Problem(
                f"{path}.max_iter",
                f"gives no band to stop runs at (max_iter/eta = {max_iter / eta:g} < 1)",
                f"use max_iter >= eta ({eta:g})",
            )
        )
        return None
    return EarlyTerminate(
        min_iter=None if min_iter is None else int(min_iter),
        max_iter=None if max_iter is None else int(max_iter),
        s=s,
        eta=eta,
        strict=strict,
    )


def parse_command(raw: object, problems: list[Problem]) -> tuple[str, ...] | None:
    """``command:`` — a list of strings (numbers are turned into text, as ``wandb agent`` does).

    Deliberately stricter than W&B: an unknown ``${macro}``, or a macro inside a longer item,
    is an error here, because ``wandb agent`` silently drops or passes it through literally.
    """
    example = "[${env}, ${interpreter}, ${program}, ${args}]"
    if not isinstance(raw, list):
        how = "split it into a YAML list of items" if isinstance(raw, str) else "write a list"
        problems.append(
            Problem("command", f"{described(raw)}, not a list", f"{how}, e.g. {example}")
        )
        return None
    if not raw:
        return None  # as in wandb agent: an empty command means the default one
    n_before = len(problems)
    command: list[str] = []
    for i, part in enumerate(raw):
        where = item("command", i)
        if isinstance(part, str):
            _check_macros(part, where, problems)
            command.append(part)
        elif is_number(part):
            command.append(str(part))
        else:
            problems.append(
                Problem(
                    where,
                    f"{described(part)}",
                    "command items are strings (quote it) or numbers",
                )
            )
    return tuple(command) if len(problems) == n_before else None


def _check_macros(part: str, where: str, problems: list[Problem]) -> None:
    macros = [f"${{{m}}}" for m in COMMAND_MACROS]
    for match in _MACRO.finditer(part):
        inner = match.group(1)
        whole = match.group(0) == part
        if _ENVVAR.fullmatch(inner):
            continue
        if inner.startswith("envvar:"):
            problems.append(
                Problem(
                    where,
                    f"{show(match.group(0))}: wandb agent expands ${{envvar:NAME}} only for names"
                    " of capital letters, digits and _",
                    "write the variable's name in capitals",
                )
            )
        elif inner in COMMAND_MACROS and not whole:
            problems.append(
                Problem(
                    where,
                    f"{show(match.group(0))} is expanded only as a list item of its own",
                    f"split {show(part)} into separate items",
                )
            )
        elif inner not in COMMAND_MACROS and whole:
            problems.append(
                Problem(
                    where,
                    f"{show(part)} is not a macro wandb agent knows (it would expand to nothing)",
                    f"use {', '.join(macros)} or ${{envvar:NAME}}" + suggest(part, macros),
                )
            )
        elif inner not in COMMAND_MACROS:
            problems.append(
                Problem(
                    where,
                    f"{show(match.group(0))} reaches the program literally (no shell runs it)",
                    "use a list item ${envvar:NAME} for an environment variable",
                )
            )


def parse_run_cap(raw: object, problems: list[Problem]) -> int | None:
    """``run_cap:`` — a positive integer (``5.0`` counts, as in W&B's schema)."""
    if is_whole(raw) and raw > 0:
        return int(raw)
    problems.append(
        Problem("run_cap", f"{show(raw)} is not allowed", "use a whole number greater than 0")
    )
    return None


def check_controller(raw: object, problems: list[Problem]) -> None:
    """``controller: {type: local | cloud}`` — accepted and ignored: sweepherd is the controller."""
    if not isinstance(raw, Mapping):
        problems.append(
            Problem("controller", f"{described(raw)}", "write controller: {type: local}")
        )
    elif "type" not in raw:
        problems.append(Problem("controller.type", "missing", "use local or cloud"))
    else:
        _choice(raw["type"], "controller.type", ("local", "cloud"), problems)


def check_scheduler(raw: object, method: object, problems: list[Problem]) -> None:
    """``scheduler:`` — only ``{engine: wandb}`` is accepted (and ignored); the rest is W&B's
    custom-scheduler feature, which sweepherd does not run."""
    if not isinstance(raw, Mapping):
        problems.append(
            Problem("scheduler", f"{described(raw)}", "write scheduler: {engine: wandb}")
        )
        return
    _unknown_keys(raw, "scheduler", SCHEDULER_KEYS, problems)
    if "engine" not in raw:
        problems.append(Problem("scheduler.engine", "missing", "use wandb, optuna or ax"))
    elif _choice(raw["engine"], "scheduler.engine", SCHEDULER_ENGINES, problems):
        engine = raw["engine"]
        if engine != "wandb":
            problems.append(
                Problem(
                    "scheduler.engine",
                    f"{engine!r} is {UNSUPPORTED} (sweepherd runs W&B's grid, random and bayes)",
                    "remove scheduler: and use method: grid, random or bayes",
                    unsupported=True,
                )
            )
        elif method == "custom":
            problems.append(
                Problem(
                    "scheduler.engine",
                    "wandb does not support method: custom (W&B's rule)",
                    "use method: grid, random or bayes",
                )
            )
    for key in ("source", "optimizer", "search_space"):
        if key in raw:
            problems.append(
                Problem(
                    f"scheduler.{key}",
                    f"custom scheduler code is {UNSUPPORTED}",
                    "remove it and describe the search space under parameters:",
                    unsupported=True,
                )
            )
