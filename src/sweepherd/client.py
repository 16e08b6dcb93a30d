"""The tiny client API a training script may use instead of (or beside) wandb.

    import sweepherd
    params = sweepherd.params({"lr": 1e-3})     # the sweep's values over your defaults
    sweepherd.log({"val_loss": 0.31})           # the agent reads it live

It needs nothing but the standard library, and does nothing when the script runs outside a
sweep (``params`` returns the defaults, ``log`` is a no-op), so a script stays runnable by hand.
The agent tells the trial where to write through environment variables (see
:data:`ENV_METRICS_FILE`, :data:`ENV_PARAMS_FILE`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

#: The JSON-lines file this run's metrics are appended to; set by the agent for each trial.
ENV_METRICS_FILE = "SWEEPHERD_METRICS_FILE"
#: The run's parameter file, in W&B's format (the same file as ``WANDB_SWEEP_PARAM_PATH``).
ENV_PARAMS_FILE = "SWEEPHERD_PARAMS_FILE"


class _Steps:
    """The step counter of this process's run (``wandb.log``'s ``_step``)."""

    next = 0


def log(data: Mapping[str, Any], step: int | None = None) -> None:
    """Record metric values for the current run, like ``wandb.log``.

    Each call appends one JSON line ``{"_step": n, "_timestamp": t, **data}`` to the run's
    metrics file. Values must be JSON-serialisable numbers, strings or booleans; NaN and
    infinities are kept as strings so the line stays valid JSON. Outside a sweep it does nothing.
    """
    path = os.environ.get(ENV_METRICS_FILE)
    if not path:
        return
    if not isinstance(data, Mapping):
        raise TypeError(f"sweepherd.log() takes a dict of metrics, not {type(data).__name__}")
    if step is None:
        step = _Steps.next
    _Steps.next = max(_Steps.next, step) + 1
    row: dict[str, Any] = {"_step": step, "_timestamp": time.time()}
    for key, value in data.items():
        row[str(key)] = _plain(value)
    line = json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n"
    # One write() per line in append mode: a reader never sees half a line from a live writer
    # on a local filesystem, and the agent ignores a torn last line in any case.
    with open(path, "a", encoding="utf-8") as f:  # noqa: PTH123 - one short append, no Path needed
        f.write(line)


def params(defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The run's parameters laid over ``defaults`` (sweep values win, as in ``wandb.config``)."""
    merged: dict[str, Any] = dict(defaults or {})
    path = os.environ.get(ENV_PARAMS_FILE)
    if not path:
        return merged
    import yaml  # only needed inside a sweep, where the agent's environment has it

    with open(path, encoding="utf-8") as f:  # noqa: PTH123
        doc = yaml.safe_load(f) or {}
    for key, wrapped in doc.items():
        if key == "wandb_version":
            continue
        merged[key] = wrapped["value"] if isinstance(wrapped, Mapping) else wrapped
    return merged


def _plain(value: Any) -> Any:
    """A JSON-safe plain value: numpy scalars become Python numbers, NaN/inf become strings."""
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, (str, bytes)):
        with contextlib.suppress(TypeError, ValueError):
            value = item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
