"""Parameter values: turning them into plain Python types and comparing them by value.

Suggestions go into ``params.yaml`` and onto command lines, so they must be plain Python
(``yaml.safe_dump`` refuses numpy scalars). Points are compared by value, the way W&B's grid
search compares them (``3`` equals ``3.0``, ``True`` differs from ``1``), and a little more
robustly: floats are compared to 12 significant digits, so ``0.30000000000000004`` (what
``np.arange(0, 1, 0.1)`` yields) matches a ``0.3`` written by hand.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

from sweepherd.config._model import nest

#: Significant digits to which floats are compared.
FLOAT_DIGITS = 12


def plain(value: Any) -> Any:
    """``value`` as plain Python types: numpy scalars become int/float/bool/str, tuples and
    arrays become lists, mappings become dicts (copied all the way down)."""
    if value is None:
        return None
    if isinstance(value, bool):  # before int: bool is an int
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):  # numpy.float64 is a float subclass
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return plain(tolist())
    return value


def value_key(value: Any) -> Hashable:
    """A hashable key equal for values W&B's grid considers the same point."""
    if value is None:
        return ("none",)
    if isinstance(value, bool):
        return ("bool", bool(value))
    if isinstance(value, int):
        return ("num", int(value))
    if isinstance(value, float):
        return ("num", _float_key(float(value)))
    if isinstance(value, str):
        return ("str", str(value))
    if isinstance(value, Mapping):
        items = sorted(((str(k), value_key(v)) for k, v in value.items()), key=lambda kv: kv[0])
        return ("dict", tuple(items))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(value_key(v) for v in value))
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return value_key(item())
    return ("repr", type(value).__name__, repr(value))


def _float_key(x: float) -> int | float | str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return x
    rounded = float(f"{x:.{FLOAT_DIGITS}g}")
    if rounded.is_integer():
        return int(rounded)
    return rounded


def to_params(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """A suggestion as the nested dict of plain values that ``wandb.config`` will hold."""
    return nest({path: plain(value) for path, value in flat.items()})
