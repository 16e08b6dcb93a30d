"""``sweepherd validate SWEEP_YAML`` — check a sweep config and list every problem in it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from sweepherd.config import GRID_DISTRIBUTIONS, Param, SweepConfig, load_config, run_problems
from sweepherd.errors import ConfigError


@click.command(short_help="Check a sweep config; list every problem.")
@click.argument("sweep_yaml", metavar="SWEEP_YAML", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def validate(sweep_yaml: Path, as_json: bool) -> None:
    """Check SWEEP_YAML, a W&B sweep config, as W&B's engine and sweepherd would.

    Every problem is listed at once, each with the key path that holds it. Exit status 0 when
    the config is valid and sweepherd can run it, 3 otherwise.
    """
    try:
        config = load_config(sweep_yaml)
        problems = run_problems(config)
        if problems:
            raise ConfigError(
                f"{sweep_yaml} is valid for W&B, but sweepherd cannot run it:", violations=problems
            )
    except ConfigError as exc:
        if as_json:
            error = {"message": exc.message, "hint": exc.hint, "violations": exc.violations}
            click.echo(json.dumps({"file": str(sweep_yaml), "valid": False, "error": error}))
        raise
    if as_json:
        doc = {"file": str(sweep_yaml), "valid": True, **describe(config)}
        click.echo(json.dumps(_strict_json(doc), allow_nan=False))
    else:
        click.echo(summary(config, str(sweep_yaml)))


def _strict_json(value: Any) -> Any:
    """``value`` with NaN and infinities as the strings YAML wrote them as (``.nan``, ``.inf``,
    ``-.inf``): JSON has no such numbers, and strict parsers (``jq``) refuse ``NaN``."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict_json(v) for v in value]
    return value


def n_grid_points(config: SweepConfig) -> int | None:
    """How many runs a grid sweep has; None for random and bayes."""
    if config.method != "grid":
        return None
    from sweepherd.search import grid_size

    return grid_size(config)


def _range(p: Param) -> str:
    if p.distribution == "constant":
        return json.dumps(p.value, default=str)
    if p.distribution == "categorical":
        values = json.dumps(list(p.values or ()), default=str)
        if len(values) > 50:
            values = f"{len(p.values or ())} values"
        return values + (" with probabilities" if p.probabilities else "")
    if p.min is not None:
        text = f"{p.min:g} .. {p.max:g}"
    elif p.mu is not None:
        text = f"mu={p.mu:g} sigma={p.sigma:g}"
    else:
        text = f"a={p.a:g} b={p.b:g}"
    return text + (f" step {p.q:g}" if p.distribution.startswith("q_") and p.q else "")


def summary(config: SweepConfig, source: str) -> str:
    """The human summary of a valid config: one headline and one line per parameter."""
    n = len(config.parameters)
    names = ", ".join(p.name for p in config.parameters)
    if len(names) > 60:
        names = names[:57] + "..."
    head = f"{source} is valid: {config.method} search over {n} parameter{'s' * (n != 1)} ({names})"
    lines = [head]
    width = max(len(p.name) for p in config.parameters)
    dist_width = max(len(p.distribution) for p in config.parameters)
    for p in config.parameters:
        lines.append(f"  {p.name:<{width}}  {p.distribution:<{dist_width}}  {_range(p)}")
    if config.metric is not None:
        target = "" if config.metric.target is None else f" (target {config.metric.target:g})"
        lines.append(f"  metric: {config.metric.goal} {config.metric.name}{target}")
    points = n_grid_points(config)
    if points is not None:
        lines.append(f"  grid: {points} run{'s' * (points != 1)}")
    if config.run_cap is not None:
        lines.append(f"  run_cap: {config.run_cap}")
    et = config.early_terminate
    if et is not None:
        bands = (
            f"min_iter={et.min_iter}" if et.max_iter is None else f"max_iter={et.max_iter} s={et.s}"
        )
        lines.append(f"  early_terminate: hyperband {bands} eta={et.eta:g} strict={et.strict}")
        raw = config.raw.get("early_terminate")
        if et.max_iter is not None and isinstance(raw, dict) and "min_iter" in raw:
            lines.append(
                "  note: early_terminate.min_iter is ignored: max_iter and s set the bands "
                "(as in W&B); drop one of them"
            )
    return "\n".join(lines)


def describe(config: SweepConfig) -> dict[str, Any]:
    """The JSON form of a valid config's summary."""
    params = []
    for p in config.parameters:
        fields: dict[str, Any] = {
            "name": p.name,
            "path": list(p.path),
            "distribution": p.distribution,
        }
        for key in ("value", "values", "probabilities", "min", "max", "q", "mu", "sigma", "a", "b"):
            value = getattr(p, key)
            if value is not None or (key == "value" and p.distribution == "constant"):
                fields[key] = list(value) if isinstance(value, tuple) else value
        fields["grid"] = p.distribution in GRID_DISTRIBUTIONS and p.probabilities is None
        params.append(fields)
    metric = config.metric
    et = config.early_terminate
    return {
        "method": config.method,
        "n_parameters": len(config.parameters),
        "parameters": params,
        "metric": None
        if metric is None
        else {"name": metric.name, "goal": metric.goal, "target": metric.target},
        "n_grid_points": n_grid_points(config),
        "run_cap": config.run_cap,
        "early_terminate": None
        if et is None
        else {
            "type": et.type,
            "min_iter": et.min_iter,
            "max_iter": et.max_iter,
            "s": et.s,
            "eta": et.eta,
            "strict": et.strict,
        },
        "program": config.program,
        "command": None if config.command is None else list(config.command),
    }
