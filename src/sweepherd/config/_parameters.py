"""``parameters:`` — every parameter form W&B accepts, checked and turned into :class:`Param`.

The rules follow W&B's sweep schema (``sweeps/config/schema.json``) and engine, written out as a
table so that each problem can say exactly which keys a form takes:

* The distribution is inferred exactly as W&B infers it when ``distribution:`` is omitted:
  ``value`` → constant, ``values`` → categorical (with ``probabilities``: categorical with
  probabilities), ``min``/``max`` → int_uniform when both are integers, else uniform. Nothing
  else is inferred (``q``, ``mu``, ``a`` ... need an explicit distribution).
* Defaults are W&B's: ``q=1.0``, ``mu=0``, ``sigma=1``, ``a=b=1``.
* ``min < max``, probabilities sum to 1, and the deprecated exponent forms are rejected at any
  depth of nesting (W&B's schema check looks only at the top level; its engine then fails or
  samples nonsense for nested ones).
* Deliberately stricter than W&B: ``sigma``, ``a`` and ``b`` must be greater than 0 and bounds
  finite (W&B accepts 0 and NaN, then samples NaN), and values must be storable as JSON.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from sweepherd.config._model import DISTRIBUTIONS, GRID_DISTRIBUTIONS, Param
from sweepherd.config._problems import (
    Problem,
    child,
    described,
    is_finite_number,
    is_number,
    item,
    json_problems,
    one_of,
    show,
    suggest,
    yaml_number_hint,
)

#: W&B's pattern for parameter names (``propertyNames`` in its schema).
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")

#: W&B's explicit name for a categorical parameter with probabilities; stored as categorical.
CATEGORICAL_W_PROBABILITIES = "categorical_w_probabilities"

#: distribution -> (required keys, optional keys with W&B's defaults).
FORMS: dict[str, tuple[tuple[str, ...], dict[str, float]]] = {
    "constant": (("value",), {}),
    "categorical": (("values",), {}),
    CATEGORICAL_W_PROBABILITIES: (("values", "probabilities"), {}),
    "int_uniform": (("min", "max"), {}),
    "uniform": (("min", "max"), {}),
    "q_uniform": (("min", "max"), {"q": 1.0}),
    "log_uniform_values": (("min", "max"), {}),
    "q_log_uniform_values": (("min", "max"), {"q": 1.0}),
    "inv_log_uniform_values": (("min", "max"), {}),
    "normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "log_normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_log_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "beta": ((), {"a": 1.0, "b": 1.0}),
    "q_beta": ((), {"a": 1.0, "b": 1.0, "q": 1.0}),
}

#: Deprecated exponent forms -> their replacement. W&B's config check (``sweeps.SweepConfig``)
#: rejects them; ``wandb sweep`` only warns ("Malformed sweep config") and its sampler still
#: takes them. sweepherd refuses them, with the converted limits in the message.
DEPRECATED: dict[str, str] = {
    "log_uniform": "log_uniform_values",
    "q_log_uniform": "q_log_uniform_values",
    "inv_log_uniform": "inv_log_uniform_values",
}

#: Every key a parameter spec may hold, in some form.
PARAM_KEYS = (
    "distribution",
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
    "parameters",
)

#: Names other libraries use for a distribution -> the W&B name (for "did you mean").
DISTRIBUTION_ALIASES = {
    "loguniform": "log_uniform_values",
    "log": "log_uniform_values",
    "log-uniform": "log_uniform_values",
    "reciprocal": "log_uniform_values",
    "qloguniform": "q_log_uniform_values",
    "quniform": "q_uniform",
    "randint": "int_uniform",
    "int": "int_uniform",
    "integer": "int_uniform",
    "float": "uniform",
    "choice": "categorical",
    "categories": "categorical",
    "fixed": "constant",
    "const": "constant",
    "gaussian": "normal",
    "qnormal": "q_normal",
    "lognormal": "log_normal",
    "qlognormal": "q_log_normal",
}

_INFERRED = (
    "W&B infers only constant (value:), categorical (values:), int_uniform and uniform "
    "(min: and max:)"
)


def yaml_path(path: tuple[str, ...]) -> str:
    """The key path of a parameter in the sweep YAML: ``parameters.opt.parameters.lr``."""
    return "parameters." + ".parameters.".join(path)


def parse_parameters(
    specs: object, path: str, prefix: tuple[str, ...], problems: list[Problem]
) -> list[Param]:
    """Check a ``parameters:`` mapping (at any depth); return its leaves in written order.

    Problems are appended to ``problems``; a parameter with problems yields no :class:`Param`.
    """
    if not isinstance(specs, Mapping):
        problems.append(
            Problem(
                path,
                f"{described(specs)}, not a mapping of parameters",
                "write one entry per parameter, like parameters: {lr: {min: 0.001, max: 0.1}}",
            )
        )
        return []
    if not specs:
        problems.append(Problem(path, "is empty", "give at least one parameter"))
        return []
    params: list[Param] = []
    for name, spec in specs.items():
        where = child(path, name)
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            problems.append(
                Problem(
                    where,
                    f"{show(name)} is not a valid parameter name",
                    "a name starts with a letter or _ and holds only letters, digits, _, . and -",
                )
            )
        params += _parse_parameter(spec, where, (*prefix, str(name)), problems)
    return params


def _parse_parameter(
    spec: object, path: str, name: tuple[str, ...], problems: list[Problem]
) -> list[Param]:
    if not isinstance(spec, Mapping):
        problems.append(
            Problem(
                path,
                f"{described(spec)}, not a parameter spec",
                f"write {{value: {show(spec)}}} for a constant, or give values:, min: and max:,"
                " distribution: or parameters:",
            )
        )
        return []
    n_before = len(problems)
    for key in spec:
        if not isinstance(key, str):
            problems.append(Problem(child(path, key), f"key {described(key)}", ""))
    if "parameters" in spec:
        for key in spec:
            if key != "parameters":
                problems.append(
                    Problem(
                        child(path, key),
                        "is not allowed beside parameters:",
                        "a nested group holds only parameters:; make it a parameter inside it",
                    )
                )
        # The leaves that parsed, even beside bad ones: the method's checks still see them.
        return parse_parameters(spec["parameters"], child(path, "parameters"), name, problems)
    distribution = _distribution(spec, path, problems)
    if distribution is None:
        # Still report what can be told without a distribution, so no problem hides another.
        for key in spec:
            if isinstance(key, str) and key not in PARAM_KEYS:
                problems.append(
                    Problem(
                        child(path, key),
                        "is not a parameter key",
                        f"a parameter takes {', '.join(PARAM_KEYS)}" + suggest(key, PARAM_KEYS),
                    )
                )
        named = spec.get("distribution")
        if "distribution" in spec and not (isinstance(named, str) and named in DEPRECATED):
            fields = {k: spec[k] for k in PARAM_KEYS if k in spec and k != "distribution"}
            _check_fields(fields, path, "", problems)
        return []
    param = _parse_form(spec, path, name, distribution, problems)
    return [param] if param is not None and len(problems) == n_before else []


def _distribution(spec: Mapping[Any, Any], path: str, problems: list[Problem]) -> str | None:
    """The distribution named or inferred, or None after recording why there is none."""
    if "distribution" in spec:
        name = spec["distribution"]
        if isinstance(name, str) and name in DEPRECATED:
            problems.append(_deprecated(spec, path, name))
            return None
        if not isinstance(name, str) or name not in FORMS:
            problems.append(
                Problem(
                    child(path, "distribution"),
                    f"{show(name)} is not a distribution",
                    f"use one of {', '.join(DISTRIBUTIONS)}"
                    + suggest(name, FORMS, DISTRIBUTION_ALIASES),
                )
            )
            return None
        return name
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return CATEGORICAL_W_PROBABILITIES if "probabilities" in spec else "categorical"
    if "min" in spec or "max" in spec:
        both_int = all(
            isinstance(spec.get(k), int) and not isinstance(spec.get(k), bool)
            for k in ("min", "max")
        )
        return "int_uniform" if both_int else "uniform"
    where = child(path, "distribution")
    if "mu" in spec or "sigma" in spec:
        needs = "mu and sigma need distribution: normal, q_normal, log_normal or q_log_normal"
        problems.append(Problem(where, f"missing; {_INFERRED}", needs))
    elif "a" in spec or "b" in spec:
        problems.append(Problem(where, f"missing; {_INFERRED}", "a and b need distribution: beta"))
    elif "q" in spec:
        needs = "q needs distribution: q_uniform, q_log_uniform_values, q_normal, q_log_normal"
        problems.append(Problem(where, f"missing; {_INFERRED}", f"{needs} or q_beta"))
    elif not spec:
        problems.append(
            Problem(
                path,
                "is empty",
                "give value:, values:, min: and max:, distribution: or parameters:",
            )
        )
    elif "probabilities" in spec:
        problems.append(
            Problem(child(path, "values"), "missing; probabilities need values", "one per value")
        )
    return None  # any unknown keys are reported by the caller


def _deprecated(spec: Mapping[Any, Any], path: str, name: str) -> Problem:
    replacement = DEPRECATED[name]
    low, high = spec.get("min"), spec.get("max")
    if name == "inv_log_uniform":
        how = "min: e^-max, max: e^-min"
        exponents = (-high, -low) if is_finite_number(low) and is_finite_number(high) else None
    else:
        how = "min: e^min, max: e^max"
        exponents = (low, high) if is_finite_number(low) and is_finite_number(high) else None
    if exponents is not None:
        try:
            new_low, new_high = math.exp(exponents[0]), math.exp(exponents[1])
        except OverflowError:
            pass
        else:
            how += f" (here min: {new_low:.6g}, max: {new_high:.6g})"
    if "q" in spec:
        how += " and the same q"
    return Problem(
        child(path, "distribution"),
        f"'{name}' is deprecated (W&B's config check refuses it, `wandb sweep` warns that the"
        " config is malformed): its min and max are base-e exponents",
        f"use distribution: {replacement} with the limit values themselves, {how}",
    )


def _parse_form(
    spec: Mapping[Any, Any],
    path: str,
    name: tuple[str, ...],
    distribution: str,
    problems: list[Problem],
) -> Param | None:
    required, defaults = FORMS[distribution]
    allowed = ("distribution", *required, *defaults)
    explicit = "distribution" in spec
    takes = f"{distribution} takes {', '.join(allowed)}"
    for key in spec:
        if key in allowed or not isinstance(key, str):
            continue
        if key == "probabilities" and distribution == "categorical":
            problems.append(
                Problem(
                    child(path, key),
                    "is not allowed with distribution: categorical in W&B's schema",
                    "remove distribution: (W&B then infers categorical with probabilities)"
                    f" or write distribution: {CATEGORICAL_W_PROBABILITIES}",
                )
            )
        elif key in PARAM_KEYS:
            if explicit:
                how = ""
            elif key == "q":
                how = " (inferred; W&B never infers a q_ distribution: name one)"
            else:
                how = " (inferred)"
            problems.append(
                Problem(child(path, key), f"is not used by distribution {distribution}{how}", takes)
            )
        else:
            problems.append(
                Problem(
                    child(path, key), "is not a parameter key", takes + suggest(key, PARAM_KEYS)
                )
            )
    for key in required:
        if key not in spec:
            problems.append(
                Problem(
                    child(path, key),
                    "missing",
                    f"distribution {distribution} needs {' and '.join(required)}",
                )
            )
    n_before = len(problems)
    fields: dict[str, Any] = dict(defaults)
    for key in (*required, *defaults):
        if key in spec:
            fields[key] = spec[key]
    _check_fields(fields, path, distribution, problems)
    if len(problems) > n_before or any(k not in fields for k in required):
        return None
    if distribution == CATEGORICAL_W_PROBABILITIES:
        distribution = "categorical"
    for key in ("values", "probabilities"):
        if key in fields:
            fields[key] = tuple(fields[key])
    return Param(path=name, distribution=distribution, **fields)


def _check_fields(
    fields: dict[str, Any], path: str, distribution: str, problems: list[Problem]
) -> None:
    if "value" in fields:
        problems += json_problems(fields["value"], child(path, "value"))
    if "values" in fields:
        _check_values(fields, path, problems)
    for key in ("min", "max", "mu", "q", "sigma", "a", "b"):
        if key in fields:
            _check_number(fields[key], child(path, key), distribution, key, problems)
    if distribution.endswith("log_normal"):
        _check_log_normal(fields, path, problems)
    low, high = fields.get("min"), fields.get("max")
    if is_finite_number(low) and is_finite_number(high):
        if distribution == "int_uniform" and not (isinstance(low, int) and isinstance(high, int)):
            return
        if low >= high:
            problems.append(
                Problem(child(path, "min"), f"must be less than max (min={low}, max={high})")
            )
        elif distribution.endswith("log_uniform_values") and low <= 0:
            problems.append(
                Problem(
                    child(path, "min"),
                    f"must be greater than 0 for {distribution} (min={low})",
                    "min and max are the limits themselves, e.g. min: 0.00001, max: 0.1",
                )
            )


#: The largest standard normal quantile the sampler draws (``search/_sampling.py``'s ``U_MAX``),
#: rounded up; and the natural log of the largest float.
_Z_MAX = 7.04
_LOG_FLOAT_MAX = math.log(1.7976931348623157e308)


def _check_log_normal(fields: dict[str, Any], path: str, problems: list[Problem]) -> None:
    """A log-normal's ``mu`` and ``sigma`` are on the log scale: ``mu: 800`` is not "about 800"
    but e^800, beyond a float."""
    mu, sigma = fields.get("mu", 0.0), fields.get("sigma", 1.0)
    if not (is_finite_number(mu) and is_finite_number(sigma)) or sigma <= 0:
        return  # reported by _check_number
    top = mu + _Z_MAX * sigma
    if top > _LOG_FLOAT_MAX:
        problems.append(
            Problem(
                child(path, "mu"),
                f"gives values up to e^{top:.0f}, beyond the largest float (e^709)",
                "mu and sigma are on the log scale (values are e^x, x normal with mean mu): for"
                " values around 1000 write mu: 6.9 (the natural log of 1000)",
            )
        )


def _check_number(
    value: object, path: str, distribution: str, key: str, problems: list[Problem]
) -> None:
    if not is_number(value):
        problems.append(
            Problem(path, f"{described(value)}, not a number" + yaml_number_hint(value))
        )
        return
    if not is_finite_number(value):
        what = "is too large for a float" if isinstance(value, int) else "is not a finite number"
        problems.append(Problem(path, f"{show(value)} {what}"))
        return
    if distribution == "int_uniform" and not isinstance(value, int):
        problems.append(
            Problem(
                path,
                f"{value} is not an integer",
                "int_uniform needs whole numbers like 1 (not 1.0); for real numbers use"
                " distribution: uniform",
            )
        )
    elif key in ("q", "sigma", "a", "b") and value <= 0:
        problems.append(Problem(path, f"must be greater than 0 (got {value})"))


def _check_values(fields: dict[str, Any], path: str, problems: list[Problem]) -> None:
    values = fields["values"]
    where = child(path, "values")
    if not isinstance(values, list):
        problems.append(Problem(where, f"{described(values)}, not a list", "write values: [a, b]"))
        return
    if not values:
        problems.append(Problem(where, "is empty", "give at least one value"))
        return
    for i, value in enumerate(values):
        problems += json_problems(value, item(where, i))
    if "probabilities" not in fields:
        return
    probabilities = fields["probabilities"]
    where = child(path, "probabilities")
    if not isinstance(probabilities, list) or not probabilities:
        problems.append(
            Problem(where, f"{show(probabilities)} is not a list of numbers", "one per value")
        )
        return
    bad = False
    for i, p in enumerate(probabilities):
        if not is_finite_number(p) or p < 0:
            problems.append(
                Problem(item(where, i), f"{show(p)} is not a probability", "use a number >= 0")
            )
            bad = True
    if len(probabilities) != len(values):
        problems.append(
            Problem(
                where,
                f"has {len(probabilities)} entries but values has {len(values)}",
                "give one probability per value",
            )
        )
    elif not bad and abs(sum(probabilities) - 1.0) > 1e-8 + 1e-5:  # W&B's numpy.isclose
        problems.append(
            Problem(where, f"add up to {sum(probabilities):.10g}, not 1", "make them sum to 1")
        )


def bayes_problems(params: list[Param]) -> list[Problem]:
    """What W&B's bayes engine cannot model: values drawn with given probabilities."""
    return [
        Problem(
            child(yaml_path(param.path), "probabilities"),
            "not used by method: bayes (W&B's bayes engine fails on it)",
            "remove probabilities (bayes treats the values alike), or use method: random",
        )
        for param in params
        if param.probabilities is not None
    ]


#: The most values one grid parameter may expand to: every claim lists them, and a sweep of
#: more points than this would not end anyway.
MAX_GRID_AXIS = 100_000


def grid_problems(params: list[Param]) -> list[Problem]:
    """What stops ``method: grid`` from enumerating these parameters (W&B's engine refuses,
    or the range is too long to list)."""
    problems: list[Problem] = []
    for param in params:
        where = yaml_path(param.path)
        n = grid_axis_length(param)
        if n is not None and n > MAX_GRID_AXIS:
            problems.append(
                Problem(
                    where,
                    f"method: grid would run every one of its {n:,} values",
                    f"a grid parameter may have up to {MAX_GRID_AXIS:,}: narrow min..max, take a"
                    " larger q, or use method: random or bayes",
                )
            )
        elif param.probabilities is not None:
            problems.append(
                Problem(
                    child(where, "probabilities"),
                    "not allowed with method: grid (grid runs every value once)",
                    "remove probabilities, or use method: random or bayes",
                )
            )
        elif param.distribution not in GRID_DISTRIBUTIONS:
            grid = [d for d in DISTRIBUTIONS if d in GRID_DISTRIBUTIONS]
            problems.append(
                Problem(
                    where,
                    f"a {param.distribution} parameter cannot be enumerated by method: grid",
                    f"grid takes {one_of(grid)}: list the points with values: [...],"
                    " or use method: random or bayes",
                )
            )
    return problems


def grid_axis_length(param: Param) -> int | None:
    """How many values an int_uniform or q_uniform grid parameter expands to, as W&B lists
    them (``q_uniform``: ``numpy.arange(min, max, q)``, max excluded); None for others."""
    low, high = param.min, param.max
    if low is None or high is None:
        return None
    if param.distribution == "int_uniform":
        return int(high) - int(low) + 1
    if param.distribution == "q_uniform" and param.q:
        return math.ceil((high - low) / param.q)
    return None
