"""The run's parameter file, exactly as ``wandb agent`` writes it for ``WANDB_SWEEP_PARAM_PATH``.

``wandb.init()`` in an unchanged script reads this file when ``WANDB_SWEEP_PARAM_PATH`` points at
it, lays the values over the script's own ``config=`` defaults (the sweep wins) and locks them.
The format is W&B's ``config_util.save_config_file_from_dict``::

    wandb_version: 1

    lr:
      value: 0.05
    optimizer:
      value:
        name: adam

Needs only PyYAML, not wandb: the agent writes it for every run, wandb installed or not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sweepherd.errors import StoreError


def param_file_text(params: Mapping[str, Any]) -> str:
    """The text of a parameter file for ``params`` (nested, as ``wandb.config`` sees them)."""
    wrapped = {str(k): {"value": _plain(v)} for k, v in params.items()}
    text = "wandb_version: 1"
    if wrapped:  # as W&B: an empty mapping would add "{}", which its reader cannot take
        text += "\n\n" + yaml.dump(
            wrapped,
            Dumper=yaml.SafeDumper,
            default_flow_style=False,
            allow_unicode=True,
            sort_keys=False,
        )
    return text


def write_param_file(path: str | Path, params: Mapping[str, Any]) -> Path:
    """Write ``params`` to ``path`` in W&B's parameter-file form, atomically; return the path.

    The file is written under a temporary name in the same folder and renamed, so a trial never
    reads half a file. numpy scalars and tuples become plain Python values first (W&B's
    ``SafeDumper`` refuses them).

    Raises:
        StoreError: the folder cannot be created or written (read-only, full...).
    """
    path = Path(path)
    text = param_file_text(params)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(
            f"Could not write the run's parameter file {path}: {exc.strerror or exc}.",
            hint="Check that the sweep directory is writable and its filesystem is not full.",
        ) from exc
    return path


def _plain(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples and non-string keys made plain."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, bool, int, float)) or value is None:
        # bool/int/float subclasses (np.float64 is a float) become the exact builtin type
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        return None if value is None else str(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return _plain(tolist())
    return value
